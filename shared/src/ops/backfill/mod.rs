//! The migration of existing originals ("backfill"): brings every object under
//! `originals/{owner}/{image_id}` that lacks a complete status row into the model.
//!
//! Per original, in key order (see [`decide`]):
//! - **no row**: a row is created (type from the magic bytes, size from the listing, both stages
//!   `pending`) and both stages are enqueued;
//! - **a legacy row** (written without the status fields, or some of them): it is replaced by a
//!   complete row that keeps what it had (file name, creation time, derivatives of a stage the
//!   old row recorded), and only the stages without derivatives are enqueued;
//! - **a row with stages that never started** (`pending`, original stored): the row is touched
//!   (a conditional write, so two runs never both enqueue) and only those stages are enqueued;
//! - **completed, in progress, failed** images and rows changed since the run started are left
//!   alone; an object that is not an image, or whose key's owner is not the row's owner, is
//!   refused and never written.
//!
//! A run is recorded in a **run-once marker** (`migration#backfill-v1` in `CONTROL_TABLE`): run
//! id, state, checkpoint (the last key done), counts, and a lease while it runs. An automatic run
//! starts only if no run has completed (`force` starts a new one anyway); a run that stopped
//! (interrupted, out of time, failed) is resumed from its checkpoint by the next start. Rows
//! written by the run carry an `updated_at` after its start, so the page redone after a resume
//! enqueues nothing twice. `dry_run` plans everything and writes nothing, not even the marker.
//!
//! Every call that is not a dry run first gives the rows written before the `by_status_v2`
//! index existed their `status_key` ([`index_pass`]: the `pending`, `processing` and `failed`
//! rows without one, found through the old `by_status` index, each set by a conditional write on
//! its `version`), whatever the marker says: a deployment whose migration completed long ago
//! still needs it once. Idempotent and cheap once done (the rows left are the in-flight ones,
//! which their writers index anyway); a dry run counts them.

mod decide;
mod estimate;
mod index;
mod page;
mod start;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use crate::domain::migration::{f64_bits, BackfillCounts, LegacyRow, Marker, RunState};
use crate::domain::Timestamp;
use crate::ports::{BackfillRows, ImageRepository, JobQueue, MarkerStore, RepoError};
pub use decide::{decide, Decision, Left};
pub use estimate::{CostModel, Estimate};
pub use index::index_pass;
use page::PagePass;
use start::{plan_start, Start};

/// The marker's name: a new version of the migration gets a new name, hence runs again.
pub const MIGRATION: &str = "backfill-v1";
/// Keys listed per page by default (S3's maximum).
pub const PAGE: u32 = 1000;
/// Bytes read from each original: magic bytes and, for most files, the header with the size.
pub(super) const HEAD_BYTES: u64 = 64 * 1024;
/// How long a running run's lease lasts without a checkpoint.
const LEASE: Duration = Duration::from_secs(120);
/// Attempts at deciding one original again after losing a write race.
pub(super) const ATTEMPTS: u32 = 4;

/// What the caller asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillRequest {
    /// Plan and report; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Run even though a run has completed.
    #[serde(default)]
    pub force: bool,
}

/// What one call did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackfillReport {
    /// The run (none for a dry run or a refusal).
    pub run_id: Option<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// `started`, `resumed`, `refused` or `dry_run`.
    pub start: &'static str,
    /// Why a start was refused (a dry run: why a real run would be).
    pub refused: Option<String>,
    /// Whether the run is complete (false: stopped early; the next start resumes it).
    pub done: bool,
    /// The run's counts so far (a dry run: what it would do; a refused start: the counts of
    /// the run recorded on the marker).
    pub counts: BackfillCounts,
    /// Stage messages by stage.
    #[serde(serialize_with = "stages_by_name")]
    pub stages: (u64, u64),
    /// Processing time and cost of what was (would be) enqueued.
    pub estimate: Estimate,
    /// Rows given the `by_status_v2` key they lacked (a dry run: rows that lack it).
    pub rows_indexed: u64,
}

fn stages_by_name<S: serde::Serializer>(stages: &(u64, u64), s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(2))?;
    map.serialize_entry("thumbnail", &stages.0)?;
    map.serialize_entry("variant", &stages.1)?;
    map.end()
}

/// Why a call stopped with an error (the marker records it; the next start resumes): the
/// bucket, a table or a queue failed.
pub type BackfillError = super::PortError;

/// The ports a run uses.
#[derive(Debug)]
pub struct BackfillPorts<'a, S, R, Q, M> {
    /// The bucket.
    pub store: &'a S,
    /// The images table.
    pub rows: &'a R,
    /// The processing queues.
    pub queue: &'a Q,
    /// The control table's markers.
    pub markers: &'a M,
}

/// Settings of a call.
#[derive(Debug, Clone, Copy)]
pub struct BackfillSettings {
    /// Originals handled side by side.
    pub concurrency: usize,
    /// Keys per page (a checkpoint is written after each page).
    pub page: u32,
    /// Outputs per stage (thumbnail specs, variant specs), to count derivatives.
    pub outputs: (u64, u64),
    /// The basis of the estimate.
    pub cost: CostModel,
}

/// Stops a call between pages: an interrupt (Ctrl-C) or the invocation's deadline.
#[derive(Debug)]
pub struct StopWhen<'a> {
    /// Set by an interrupt.
    pub interrupted: &'a AtomicBool,
    /// The time budget's end.
    pub deadline: Option<Instant>,
}

impl StopWhen<'_> {
    pub(super) fn now(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// Runs (or, dry, plans) the migration. `progress` sees the counts after every page.
pub async fn backfill<S, R, Q, M>(
    ports: BackfillPorts<'_, S, R, Q, M>,
    request: BackfillRequest,
    settings: &BackfillSettings,
    stop: StopWhen<'_>,
    mut progress: impl FnMut(&BackfillCounts),
) -> Result<BackfillReport, BackfillError>
where
    S: crate::ports::OriginalsSource,
    R: ImageRepository + BackfillRows,
    Q: JobQueue,
    M: MarkerStore,
{
    let now = Timestamp::now();
    let rows_indexed = index_pass(ports.rows, ports.markers, request.dry_run, &stop).await?;
    let existing = ports.markers.load_marker(MIGRATION).await?;
    let start = plan_start(existing.as_ref().map(|(m, _)| m), request.force, now);

    if request.dry_run {
        let refused = match &start {
            Start::Refused(why) => Some(why.clone()),
            _ => None,
        };
        let mut counts = BackfillCounts::default();
        let mut stages = (0, 0);
        let mut after: Option<String> = None;
        loop {
            let page = ports
                .store
                .list_originals(after.as_deref(), settings.page)
                .await?;
            let pass = PagePass {
                ports: &ports,
                settings,
                started_at: None,
                now,
            };
            let (c, s) = pass.run(&page.items).await?;
            counts.add(&c);
            stages = (stages.0 + s.0, stages.1 + s.1);
            progress(&counts);
            match (page.next, stop.now()) {
                (Some(next), false) => after = Some(next),
                _ => break,
            }
        }
        return Ok(BackfillReport {
            run_id: None,
            dry_run: true,
            start: "dry_run",
            refused,
            done: true,
            counts,
            stages,
            estimate: settings.cost.estimate(&counts, stages.0, stages.1),
            rows_indexed,
        });
    }

    let (mut marker, mut version, how) = match start {
        Start::Refused(why) => {
            tracing::info!(reason = %why, "backfill not started");
            let counts = existing.map(|(m, _)| m.counts).unwrap_or_default();
            return Ok(BackfillReport {
                run_id: None,
                dry_run: false,
                start: "refused",
                refused: Some(why),
                done: true,
                counts,
                stages: (0, 0),
                estimate: settings.cost.estimate(&BackfillCounts::default(), 0, 0),
                rows_indexed,
            });
        }
        Start::Fresh { forced } => {
            let marker = Marker {
                run_id: ulid::Ulid::new().to_string(),
                state: RunState::Running,
                forced,
                started_at: now,
                finished_at: None,
                checkpoint: None,
                lease_until_ms: now.unix_millis() + LEASE.as_millis() as i64,
                counts: BackfillCounts::default(),
                error: None,
            };
            (marker, existing.map_or(0, |(_, v)| v), "started")
        }
        Start::Resume => {
            let (mut marker, v) = existing.ok_or(RepoError::Conflict)?;
            marker.state = RunState::Running;
            marker.error = None;
            marker.lease_until_ms = now.unix_millis() + LEASE.as_millis() as i64;
            (marker, v, "resumed")
        }
    };
    // Taking the run is a conditional write: of two starts at once, one wins.
    ports
        .markers
        .save_marker(MIGRATION, &marker, version)
        .await
        .map_err(|e| match e {
            RepoError::Conflict => {
                tracing::info!("another start took the run first");
                e
            }
            other => other,
        })?;
    version += 1;
    tracing::info!(run_id = %marker.run_id, how, checkpoint = ?marker.checkpoint, "backfill run taken");

    let mut stages = (0, 0);
    let result: Result<bool, BackfillError> = async {
        loop {
            if stop.now() {
                return Ok(false);
            }
            let page = ports
                .store
                .list_originals(marker.checkpoint.as_deref(), settings.page)
                .await?;
            let pass = PagePass {
                ports: &ports,
                settings,
                started_at: Some(marker.started_at),
                now: Timestamp::now(),
            };
            let (c, s) = pass.run(&page.items).await?;
            marker.counts.add(&c);
            stages = (stages.0 + s.0, stages.1 + s.1);
            if let Some(last) = page.items.last() {
                marker.checkpoint = Some(last.key.clone());
            }
            let done = page.next.is_none();
            marker.lease_until_ms = Timestamp::now().unix_millis() + LEASE.as_millis() as i64;
            if done {
                return Ok(true);
            }
            ports
                .markers
                .save_marker(MIGRATION, &marker, version)
                .await?;
            version += 1;
            progress(&marker.counts);
        }
    }
    .await;

    let end = Timestamp::now();
    marker.lease_until_ms = 0;
    let done = match result {
        Ok(true) => {
            marker.state = RunState::Completed;
            marker.finished_at = Some(end);
            true
        }
        Ok(false) => {
            marker.state = RunState::Stopped;
            false
        }
        Err(e) => {
            marker.state = RunState::Failed;
            marker.error = Some(e.to_string());
            if let Err(save) = ports.markers.save_marker(MIGRATION, &marker, version).await {
                tracing::error!(error = %save, "could not record the failure on the marker");
            }
            return Err(e);
        }
    };
    ports
        .markers
        .save_marker(MIGRATION, &marker, version)
        .await?;
    progress(&marker.counts);
    tracing::info!(run_id = %marker.run_id, state = ?marker.state, counts = ?marker.counts, "backfill call finished");
    Ok(BackfillReport {
        run_id: Some(marker.run_id.clone()),
        dry_run: false,
        start: how,
        refused: None,
        done,
        counts: marker.counts,
        stages,
        estimate: settings.cost.estimate(&marker.counts, stages.0, stages.1),
        rows_indexed,
    })
}
