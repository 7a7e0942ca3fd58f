//! The `sweeper` function's handler: one [`safelight::sweep`] per invocation. Invoked by an
//! EventBridge schedule (the event's content is not used) or by hand; answers with the report.
//! A sweep that stops on an error is an invocation error: the next scheduled one continues.

use safelight::ports::{ImageRepository, QueueAdmin, StatusIndex};
use safelight::sweep::{SweepError, SweepReport, Sweeper};
use safelight::Timestamp;

/// Runs one sweep now.
pub async fn handle<R, Q>(sweeper: &Sweeper<R, Q>) -> Result<SweepReport, SweepError>
where
    R: ImageRepository + StatusIndex,
    Q: QueueAdmin,
{
    sweeper.run(Timestamp::now()).await
}
