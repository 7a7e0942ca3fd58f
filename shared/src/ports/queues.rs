//! The processing queues and their dead-letter queues.

use std::future::Future;
use std::time::Duration;

use super::BoxError;
use crate::domain::{RetryMessage, Stage, Timestamp};

/// Failures of the job queues.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue failed or could not be reached; retrying may help.
    #[error("job queue failed: {0}")]
    Unavailable(#[source] BoxError),
    /// This function has no queue configured for the stage.
    #[error("no queue is configured for the {0} stage")]
    NotConfigured(Stage),
}

/// A received message of a stage's queue (or of its DLQ), by its receipt handle: what changing
/// its visibility, deleting or releasing it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt<'a> {
    /// The stage whose queue it was received from.
    pub stage: Stage,
    /// The receipt handle of that receive.
    pub handle: &'a str,
}

/// A copy of a received message body to send to the stage's queue again (see
/// [`JobQueue::requeue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requeue<'a> {
    /// The stage whose queue gets the copy.
    pub stage: Stage,
    /// The body, as received.
    pub body: &'a str,
    /// How long the copy stays invisible.
    pub delay: Duration,
    /// When the chain of deferrals began, if this is one.
    pub deferred_since: Option<Timestamp>,
}

/// What a receive from a stage's DLQ asks (see [`QueueAdmin::receive_dead_letters`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetterReceive {
    /// The stage whose DLQ is read.
    pub stage: Stage,
    /// At most how many messages (1-10).
    pub max: u32,
    /// How long the received messages stay hidden from other receivers.
    pub hide_for: Duration,
    /// How long to wait for a message when none is ready (a long poll).
    pub wait: Duration,
}

/// The thumbnails and variants queues.
pub trait JobQueue: Send + Sync {
    /// Sends a processing message to the stage's queue.
    fn enqueue(
        &self,
        message: &RetryMessage,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// Hides a received message for `delay` (SQS `ChangeMessageVisibility`): backoff, or a
    /// deferral while the circuit breaker is open.
    fn delay(
        &self,
        receipt: Receipt<'_>,
        delay: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// Sends a copy of a received message body to the stage's queue, invisible for its `delay`
    /// (at most 15 minutes). Deferring this way, then deleting the original, does not use up
    /// the original's receives, so an open circuit never pushes work into the DLQ. The copy
    /// carries `deferred_since` (the first deferral of the original message, a message
    /// attribute), so a chain of deferrals has a bounded total age.
    fn requeue(&self, copy: &Requeue<'_>) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// How many messages a queue holds, by where they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueDepth {
    /// Ready to be received (`ApproximateNumberOfMessages`).
    pub visible: u64,
    /// Received and not yet deleted (`ApproximateNumberOfMessagesNotVisible`).
    pub in_flight: u64,
    /// Sent with a delay that has not passed (`ApproximateNumberOfMessagesDelayed`).
    pub delayed: u64,
}

impl QueueDepth {
    /// Every message the queue holds.
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

/// A message received from a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// SQS message id.
    pub message_id: String,
    /// Receipt handle, to delete or release it.
    pub receipt_handle: String,
    /// The body as it was sent to the source queue.
    pub body: String,
}

/// What operators do with the processing queues and their dead-letter queues.
pub trait QueueAdmin: Send + Sync {
    /// The depth of the stage's queue (`dead_letters`: of its DLQ).
    fn depth(
        &self,
        stage: Stage,
        dead_letters: bool,
    ) -> impl Future<Output = Result<QueueDepth, QueueError>> + Send;
    /// Receives up to `request.max` (1-10) messages from the stage's DLQ, hidden from other
    /// receivers for `hide_for`. A long poll: waits up to `wait` (whole seconds, at most 20) for a message
    /// when none is ready, and looks at the whole queue (an SQS short poll, `wait` zero, samples
    /// some of its servers and may answer empty while messages are there). Only an empty answer
    /// to a wait of at least a second means the DLQ has nothing visible.
    fn receive_dead_letters(
        &self,
        request: &DeadLetterReceive,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, QueueError>> + Send;
    /// Deletes a received DLQ message.
    fn delete_dead_letter(
        &self,
        receipt: Receipt<'_>,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// Makes a received DLQ message visible again at once (it stays in the DLQ).
    fn release_dead_letter(
        &self,
        receipt: Receipt<'_>,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}
