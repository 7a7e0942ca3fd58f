//! The `backfill` function: the migration of existing originals
//! ([`safelight::ops::backfill`]), invoked once after each deploy and by the CLI
//! (`safelight-backfill`, `make backfill`).
//!
//! Event: `{"dry_run"?: bool, "force"?: bool}`. Answer: the [`BackfillReport`]. A call works until
//! [`DEADLINE_MARGIN`] before the invocation's deadline, records its checkpoint and answers
//! `done: false`; the next invocation resumes there (the post-deploy step invokes until `done`).

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use safelight::config::{Bounds, ConfigError, Env, Settings};
use safelight::ops::backfill::{
    backfill, BackfillCounts, BackfillError, BackfillPorts, BackfillReport, BackfillRequest,
    BackfillSettings, CostModel, StopWhen, PAGE,
};
use safelight::ports::{BackfillRows, ImageRepository, JobQueue, MarkerStore, OriginalsSource};
use safelight::{ProcessingConfig, Stage};
use serde::Deserialize;

/// Time kept back from the invocation's deadline to record the checkpoint and answer.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(30);

/// The handler with its ports.
#[derive(Debug)]
pub struct Backfill<S, R, Q, M> {
    store: S,
    rows: R,
    queue: Q,
    markers: M,
    settings: BackfillSettings,
}

/// The backfill's own variables.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct BackfillVars {
    backfill_concurrency: u32,
    processor_memory_mb: u32,
    processor_concurrency: u32,
}

impl Default for BackfillVars {
    fn default() -> Self {
        BackfillVars {
            backfill_concurrency: 16,
            processor_memory_mb: 1024,
            processor_concurrency: 10,
        }
    }
}

impl Settings for BackfillVars {
    fn validate(&self) -> Result<(), ConfigError> {
        Bounds::new("BACKFILL_CONCURRENCY", 1, 100_000).check(self.backfill_concurrency)?;
        Bounds::new("PROCESSOR_MEMORY_MB", 1, 100_000).check(self.processor_memory_mb)?;
        Bounds::new("PROCESSOR_CONCURRENCY", 1, 100_000).check(self.processor_concurrency)
    }
}

/// Reads the settings from the process environment (see [`settings_from`]).
pub fn settings_from_env() -> Result<BackfillSettings, ConfigError> {
    settings_from(&Env::process())
}

/// Reads the settings: `BACKFILL_CONCURRENCY` (default 16) originals side by side, the outputs
/// per stage from `THUMBNAIL_SPECS` / `VARIANT_SPECS` (else the defaults), and the cost model's
/// `PROCESSOR_MEMORY_MB` (1024) and `PROCESSOR_CONCURRENCY` (10).
pub fn settings_from(env: &Env) -> Result<BackfillSettings, ConfigError> {
    let vars: BackfillVars = env.read()?;
    let outputs = |stage| ProcessingConfig::read(stage, env).map(|c| c.specs.len() as u64);
    Ok(BackfillSettings {
        concurrency: vars.backfill_concurrency as usize,
        page: PAGE,
        outputs: (outputs(Stage::Thumbnail)?, outputs(Stage::Variant)?),
        cost: CostModel {
            memory_mb: vars.processor_memory_mb,
            concurrency: vars.processor_concurrency,
            ..CostModel::default()
        },
    })
}

impl<S, R, Q, M> Backfill<S, R, Q, M>
where
    S: OriginalsSource,
    R: ImageRepository + BackfillRows,
    Q: JobQueue,
    M: MarkerStore,
{
    /// A handler on these ports.
    pub fn new(store: S, rows: R, queue: Q, markers: M, settings: BackfillSettings) -> Self {
        Backfill {
            store,
            rows,
            queue,
            markers,
            settings,
        }
    }

    /// Runs (or plans) the migration until done, `deadline` or `interrupted`; `progress` sees
    /// the counts after every page.
    pub async fn run(
        &self,
        request: BackfillRequest,
        deadline: Option<Instant>,
        interrupted: &AtomicBool,
        progress: impl FnMut(&BackfillCounts),
    ) -> Result<BackfillReport, BackfillError> {
        backfill(
            BackfillPorts {
                store: &self.store,
                rows: &self.rows,
                queue: &self.queue,
                markers: &self.markers,
            },
            request,
            &self.settings,
            StopWhen {
                interrupted,
                deadline,
            },
            progress,
        )
        .await
    }
}

/// The instant to stop starting pages: the invocation's deadline (milliseconds since the epoch,
/// from the Lambda context) minus [`DEADLINE_MARGIN`].
pub fn deadline_from_epoch_millis(deadline_ms: u64) -> Instant {
    let left = safelight::domain::time::until_epoch_millis(deadline_ms);
    Instant::now() + left.saturating_sub(DEADLINE_MARGIN)
}
