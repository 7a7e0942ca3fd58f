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

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

pub use crate::domain::migration::{f64_bits, BackfillCounts, LegacyRow, Marker, RunState};
use crate::domain::{
    ContentType, ImageId, ImageRecord, NewImage, ObjectKey, OwnerId, RetryMessage, Stage, Status,
    Timestamp, UploadState,
};
use crate::engine::Limits;
use crate::ports::{
    BackfillRows, ImageRepository, JobQueue, ListedOriginal, MarkerStore, QueueError, RepoError,
    StoreError, StoredRow,
};

/// The marker's name: a new version of the migration gets a new name, hence runs again.
pub const MIGRATION: &str = "backfill-v1";
/// Keys listed per page by default (S3's maximum).
pub const PAGE: u32 = 1000;
/// Bytes read from each original: magic bytes and, for most files, the header with the size.
const HEAD_BYTES: u64 = 64 * 1024;
/// How long a running run's lease lasts without a checkpoint.
const LEASE: Duration = Duration::from_secs(120);
/// Attempts at deciding one original again after losing a write race.
const ATTEMPTS: u32 = 4;

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

/// How fast the engine renders, per megapixel of the original, and what Lambda costs: the
/// basis of the dry run's estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostModel {
    /// Thumbnail stage (150/300/600 JPEG from one decode), ms of one core per megapixel.
    pub thumbnail_ms_per_mp: f64,
    /// Variant stage (1280/2048 JPEG + WebP), ms of one core per megapixel.
    pub variant_ms_per_mp: f64,
    /// Per stage and image: fetching the original, storing the outputs, the row writes.
    pub io_ms_per_stage: f64,
    /// The processors' memory (MB); Lambda gives a full vCPU at 1769 MB, a share below.
    pub memory_mb: u32,
    /// USD per GB-second (arm64, us-east-1: 0.0000133334).
    pub usd_per_gb_second: f64,
    /// USD per million requests (0.20).
    pub usd_per_million_requests: f64,
    /// Messages per invocation (the event source's batch size).
    pub batch_size: u32,
    /// Processor invocations running at once per stage, for the wall-clock estimate.
    pub concurrency: u32,
}

impl Default for CostModel {
    /// The engine's speed as measured by `make bench` (BENCHMARKS.md, 2026-12-01, one core of a
    /// quiet 2 vCPU EPYC): a 12 MP JPEG takes 33.6 ms for the thumbnail set and 388.6 ms for the
    /// variant set, i.e. 2.8 and 32.4 ms per megapixel.
    fn default() -> Self {
        CostModel {
            thumbnail_ms_per_mp: 33.6 / 12.0,
            variant_ms_per_mp: 388.6 / 12.0,
            io_ms_per_stage: 150.0,
            memory_mb: 1024,
            usd_per_gb_second: 0.000_013_333_4,
            usd_per_million_requests: 0.20,
            batch_size: 10,
            concurrency: 10,
        }
    }
}

/// The estimate for a set of originals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// Lambda compute, in seconds of a processor (at its memory size).
    pub compute_secs: f64,
    /// Wall-clock time at `concurrency` invocations per stage.
    pub wall_secs: f64,
    /// The concurrency assumed.
    pub concurrency: u32,
    /// GB-seconds billed.
    pub gb_seconds: f64,
    /// Lambda cost in USD (compute and requests).
    pub lambda_usd: f64,
}

impl CostModel {
    /// The estimate for `stages` stage runs (of which `thumbnail_share` are thumbnail runs)
    /// over originals of `megapixels` in total.
    pub fn estimate(&self, counts: &BackfillCounts, thumbnails: u64, variants: u64) -> Estimate {
        let found_images =
            (counts.rows_created + counts.rows_repaired + counts.rows_requeued).max(1);
        let mp_per_image = counts.megapixels.get() / found_images as f64;
        let cpu_share = (f64::from(self.memory_mb) / 1769.0).min(1.0);
        let stage_secs = |runs: u64, ms_per_mp: f64| {
            runs as f64 * (mp_per_image * ms_per_mp / cpu_share + self.io_ms_per_stage) / 1000.0
        };
        let thumb = stage_secs(thumbnails, self.thumbnail_ms_per_mp);
        let variant = stage_secs(variants, self.variant_ms_per_mp);
        let compute_secs = thumb + variant;
        let gb_seconds = compute_secs * f64::from(self.memory_mb) / 1024.0;
        let invocations = (thumbnails + variants).div_ceil(u64::from(self.batch_size.max(1)));
        let concurrency = self.concurrency.max(1);
        Estimate {
            compute_secs,
            wall_secs: thumb.max(variant) / f64::from(concurrency),
            concurrency,
            gb_seconds,
            lambda_usd: gb_seconds * self.usd_per_gb_second
                + invocations as f64 / 1e6 * self.usd_per_million_requests,
        }
    }
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

/// Why a call stopped with an error (the marker records it; the next start resumes).
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// The bucket failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A table failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The decision for one original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Create this row, then enqueue the stages.
    Create(ImageRecord, Vec<Stage>),
    /// Replace the legacy row by this one, then enqueue the stages.
    Repair(ImageRecord, Vec<Stage>),
    /// Touch this row (conditional on its version), then enqueue the stages.
    Requeue(ImageRecord, Vec<Stage>),
    /// Leave it.
    Leave(Left),
}

/// Why an original is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// Completed.
    Completed,
    /// A stage is being processed.
    InProgress,
    /// Failed.
    Failed,
    /// Its row changed after the run started.
    ChangedDuringRun,
    /// Not an image Safelight can process, or a key it does not make.
    NotAnImage,
    /// The key's owner is not the row's owner.
    ForeignOwner,
}

/// Decides what to do with the original `key` of `size` bytes, whose first bytes are `head`,
/// given its row, for a run that started at `started_at`. Pure.
pub fn decide(
    owner: &OwnerId,
    image_id: ImageId,
    size: u64,
    head: &[u8],
    row: Option<StoredRow>,
    started_at: Timestamp,
    now: Timestamp,
) -> Decision {
    let fresh = |content_type, filename, created_at| {
        ImageRecord::new(
            NewImage {
                image_id,
                owner_id: owner.clone(),
                filename,
                content_type,
                byte_size: size,
                sha256: None,
                upload_state: UploadState::Stored,
            },
            created_at,
        )
    };
    match row {
        None => match ContentType::sniff(head) {
            None => Decision::Leave(Left::NotAnImage),
            Some(ct) => {
                let mut r = fresh(ct, None, now);
                r.updated_at = now;
                Decision::Create(r, Stage::ALL.to_vec())
            }
        },
        Some(StoredRow::Legacy(old)) => {
            if old.owner_id.as_deref().is_some_and(|o| o != owner.as_str()) {
                return Decision::Leave(Left::ForeignOwner);
            }
            let Some(ct) = ContentType::sniff(head) else {
                return Decision::Leave(Left::NotAnImage);
            };
            let mut r = fresh(ct, old.filename, old.created_at.unwrap_or(now));
            r.updated_at = now;
            let mut stages = Vec::new();
            for (stage, done) in [
                (Stage::Thumbnail, old.thumbnails),
                (Stage::Variant, old.variants),
            ] {
                if done.is_empty() {
                    stages.push(stage);
                } else {
                    // The old row recorded this stage's outputs: keep them, do not redo them.
                    let _ = r.begin(stage, now);
                    let result = crate::domain::StageResult {
                        derivatives: done,
                        ..Default::default()
                    };
                    let _ = r.complete(stage, result, now);
                }
            }
            r.processing_attempts = 0;
            if stages.is_empty() {
                r.processing_completed_at = Some(now);
            }
            Decision::Repair(r, stages)
        }
        Some(StoredRow::Current(r)) => {
            let r = *r;
            if &r.owner_id != owner {
                return Decision::Leave(Left::ForeignOwner);
            }
            if r.updated_at >= started_at {
                return Decision::Leave(Left::ChangedDuringRun);
            }
            match r.processing_status {
                Status::Completed => return Decision::Leave(Left::Completed),
                Status::Failed => return Decision::Leave(Left::Failed),
                Status::Pending | Status::Processing => {}
            }
            if Stage::ALL
                .iter()
                .any(|s| r.stage_status(*s) == Status::Processing)
            {
                return Decision::Leave(Left::InProgress);
            }
            let stages: Vec<Stage> = Stage::ALL
                .into_iter()
                .filter(|s| r.stage_status(*s) == Status::Pending)
                .collect();
            let mut touched = r;
            touched.updated_at = now;
            if touched.upload_state == UploadState::AwaitingUpload {
                // The original is there: the upload happened.
                touched.upload_state = UploadState::Stored;
            }
            Decision::Requeue(touched, stages)
        }
    }
}

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
    fn now(&self) -> bool {
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
            let (c, s) = page_pass(&ports, &page.items, None, settings, now).await?;
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
            let (c, s) = page_pass(
                &ports,
                &page.items,
                Some(marker.started_at),
                settings,
                Timestamp::now(),
            )
            .await?;
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

/// Rows read per page of the index pass.
const INDEX_PAGE: u32 = 100;

/// Seeds the completed total once, then gives every `pending`, `processing` and `failed` row
/// without a `status_key` one (`dry_run`: only counts them); returns how many. Stops early when `stop` says so (the next call carries on:
/// the rows done no longer lack the key).
pub async fn index_pass<R: BackfillRows, M: MarkerStore>(
    rows: &R,
    markers: &M,
    dry_run: bool,
    stop: &StopWhen<'_>,
) -> Result<u64, BackfillError> {
    // The completed total counts the completions notify saw; its seed adds the completed rows
    // it did not: all completed rows (the old index still holds them) minus those counted, read
    // after the COUNT, so a completion during the COUNT (at the end of the index's order, read
    // last) is in both and cancels out. Only a completion still in the stream's lag at that
    // instant is counted twice (about a second's worth).
    if !dry_run && markers.completed_counted().await?.is_some() {
        let rows_completed = rows.count_completed().await?;
        if let Some(counted) = markers.completed_counted().await? {
            let seed = i64::try_from(rows_completed).unwrap_or(i64::MAX)
                - i64::try_from(counted).unwrap_or(i64::MAX);
            if markers.seed_completed(seed).await? {
                tracing::info!(rows_completed, counted, seed, "completed total seeded");
            }
        }
    }
    let mut indexed = 0;
    for status in crate::status_index::INDEXED {
        let mut cursor: Option<String> = None;
        loop {
            let page = rows
                .page_unindexed(status, INDEX_PAGE, cursor.as_deref())
                .await?;
            for row in &page.items {
                if dry_run || rows.index_row(row).await? {
                    indexed += 1;
                }
            }
            match page.next {
                Some(next) if !stop.now() => cursor = Some(next),
                _ => break,
            }
        }
    }
    if indexed > 0 {
        tracing::info!(rows = indexed, dry_run, "rows given their status index key");
    }
    Ok(indexed)
}

/// The counts of some originals and their stage messages (thumbnail, variant).
type Tally = (BackfillCounts, (u64, u64));

/// How a start goes, from the marker.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Start {
    Fresh { forced: bool },
    Resume,
    Refused(String),
}

fn plan_start(marker: Option<&Marker>, force: bool, now: Timestamp) -> Start {
    match marker {
        None => Start::Fresh { forced: force },
        Some(m) if m.state == RunState::Running && m.lease_until_ms > now.unix_millis() => {
            Start::Refused(format!(
                "run {} is in progress (started {}); try again after it stops",
                m.run_id, m.started_at
            ))
        }
        Some(m) if m.state == RunState::Completed && !force => Start::Refused(format!(
            "the migration already ran: run {} completed at {}; use --force to run it again",
            m.run_id,
            m.finished_at.unwrap_or(m.started_at)
        )),
        Some(m) if m.state == RunState::Completed => Start::Fresh { forced: true },
        // Stopped, failed, or running with a lapsed lease (the process died): carry on.
        Some(_) => Start::Resume,
    }
}

/// One page of originals: decided side by side; writes and enqueues unless `started_at` is
/// `None` (dry run). Returns the page's counts and stage messages by stage.
async fn page_pass<S, R, Q, M>(
    ports: &BackfillPorts<'_, S, R, Q, M>,
    items: &[ListedOriginal],
    started_at: Option<Timestamp>,
    settings: &BackfillSettings,
    now: Timestamp,
) -> Result<Tally, BackfillError>
where
    S: crate::ports::OriginalsSource,
    R: ImageRepository + BackfillRows,
    Q: JobQueue,
{
    let results: Vec<Result<Tally, BackfillError>> = stream::iter(items)
        .map(|item| one(ports, item, started_at, settings, now))
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
    let mut counts = BackfillCounts::default();
    let mut stages = (0, 0);
    for r in results {
        let (c, s) = r?;
        counts.add(&c);
        stages = (stages.0 + s.0, stages.1 + s.1);
    }
    Ok((counts, stages))
}

async fn one<S, R, Q, M>(
    ports: &BackfillPorts<'_, S, R, Q, M>,
    item: &ListedOriginal,
    started_at: Option<Timestamp>,
    settings: &BackfillSettings,
    now: Timestamp,
) -> Result<Tally, BackfillError>
where
    S: crate::ports::OriginalsSource,
    R: ImageRepository + BackfillRows,
    Q: JobQueue,
{
    let mut c = BackfillCounts {
        images_found: 1,
        ..BackfillCounts::default()
    };
    let Ok((owner, image_id)) = ObjectKey::parse_original(&item.key) else {
        c.not_images = 1;
        return Ok((c, (0, 0)));
    };
    let key = ObjectKey::original(&owner, image_id);
    let Some(head) = ports.store.head_bytes(&key, HEAD_BYTES).await? else {
        // Deleted since the listing.
        c.images_found = 0;
        return Ok((c, (0, 0)));
    };
    let dry = started_at.is_none();
    let started_at = started_at.unwrap_or(now);
    for _ in 0..ATTEMPTS {
        let row = ports.rows.read_row(image_id).await?;
        let decision = decide(
            &owner,
            image_id,
            item.size,
            &head,
            row,
            started_at,
            Timestamp::now(),
        );
        let (stages, record) = match decision {
            Decision::Leave(why) => {
                match why {
                    Left::Completed => c.completed = 1,
                    Left::InProgress => c.in_progress = 1,
                    Left::Failed => c.failed = 1,
                    Left::ChangedDuringRun => c.changed_during_run = 1,
                    Left::NotAnImage => c.not_images = 1,
                    Left::ForeignOwner => c.foreign_owner = 1,
                }
                return Ok((c, (0, 0)));
            }
            Decision::Create(record, stages) => {
                if !dry {
                    match ports.rows.create(&record).await {
                        Ok(()) => {}
                        Err(RepoError::Conflict) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                c.rows_created = 1;
                (stages, record)
            }
            Decision::Repair(record, stages) => {
                if !dry {
                    match ports.rows.replace_legacy(&record).await {
                        Ok(()) => {}
                        Err(RepoError::Conflict) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                c.rows_repaired = 1;
                (stages, record)
            }
            Decision::Requeue(mut record, stages) => {
                if !dry {
                    match ports.rows.update(&mut record).await {
                        Ok(()) => {}
                        Err(RepoError::Conflict) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                c.rows_requeued = 1;
                (stages, record)
            }
        };
        let mut by_stage = (0, 0);
        for stage in &stages {
            if !dry {
                ports
                    .queue
                    .enqueue(&RetryMessage::new(
                        image_id,
                        record.original_key.clone(),
                        *stage,
                    ))
                    .await?;
            }
            match stage {
                Stage::Thumbnail => {
                    by_stage.0 += 1;
                    c.derivatives_missing += settings.outputs.0;
                }
                Stage::Variant => {
                    by_stage.1 += 1;
                    c.derivatives_missing += settings.outputs.1;
                }
            }
        }
        c.stages_enqueued = stages.len() as u64;
        if !stages.is_empty() {
            c.megapixels = f64_bits::F64::from_f64(megapixels(&head, item.size));
        }
        return Ok((c, by_stage));
    }
    c.changed_during_run = 1;
    Ok((c, (0, 0)))
}

/// Megapixels of an original from its header, or estimated from its size (about 0.33 bytes a
/// pixel for camera JPEGs) when the header lies beyond the bytes read.
fn megapixels(head: &[u8], size: u64) -> f64 {
    let unlimited = Limits {
        max_pixels: u64::MAX,
        max_side: u32::MAX,
        max_decode_bytes: u64::MAX,
    };
    match crate::engine::probe(head, &unlimited) {
        Ok(p) => f64::from(p.width) * f64::from(p.height) / 1e6,
        Err(_) => size as f64 / 330_000.0,
    }
}
