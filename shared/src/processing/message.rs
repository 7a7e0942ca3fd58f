//! [`Message`]: one received SQS message, as the pipeline sees it, and the lease holder each of
//! its receives is.

use crate::domain::Timestamp;
use crate::ports::Holder;

/// One received SQS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// SQS message id (the batch-failure identifier).
    pub message_id: String,
    /// Receipt handle, for visibility changes.
    pub receipt_handle: String,
    /// The body: an S3, EventBridge or Safelight event.
    pub body: String,
    /// `ApproximateReceiveCount` (1 on the first receive).
    pub receive_count: u32,
    /// When the chain of circuit-breaker deferrals this message belongs to began (the
    /// `safelight-deferred-since` attribute of a deferred copy); `None` for a fresh message.
    pub deferred_since: Option<Timestamp>,
}

impl Message {
    /// This receive of this message, as the holder of a processing lease.
    pub fn holder(&self) -> Holder<'_> {
        Holder {
            message_id: &self.message_id,
            receive: self.receive_count,
        }
    }
}
