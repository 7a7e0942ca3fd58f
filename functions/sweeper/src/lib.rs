//! The `sweeper` function's handler: one [`safelight::sweep`] per invocation. Invoked by an
//! EventBridge schedule (the event's content is not used) or by hand; answers with the report.
//! A sweep that stops on an error is an invocation error: the next scheduled one continues.

use std::time::Duration;

use safelight::ports::{ImageRepository, JobQueue, ObjectStore, QueueAdmin, StatusIndex};
use safelight::sweep::{SweepError, SweepReport, Sweeper};
use safelight::Timestamp;

/// Kept back from the invocation's remaining time: releasing the held dead letters and
/// answering must fit after the sweep's budget.
pub const RESERVE: Duration = Duration::from_secs(8);

/// The sweep's budget in an invocation with `remaining` time left.
pub fn budget(remaining: Duration) -> Duration {
    remaining.saturating_sub(RESERVE)
}

/// Runs one sweep now, within `budget`.
pub async fn handle<R, A, S, Q>(
    sweeper: &Sweeper<'_, R, A, S, Q>,
    budget: Duration,
) -> Result<SweepReport, SweepError>
where
    R: ImageRepository + StatusIndex,
    A: QueueAdmin,
    S: ObjectStore,
    Q: JobQueue,
{
    sweeper.run(Timestamp::now(), budget).await
}
