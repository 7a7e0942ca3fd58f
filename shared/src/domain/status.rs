//! The processing status model: the values each status field may take and the transitions
//! allowed between them. A disallowed transition is an error, never a silent overwrite.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `processing_status`, `thumbnail_status` and `variant_status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Nothing has happened yet.
    Pending,
    /// Work is under way (or waiting for a retry after a transient failure).
    Processing,
    /// Done; derivatives are stored.
    Completed,
    /// Failed for good (permanent error, or retries exhausted).
    Failed,
}

impl Status {
    /// The value as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Processing => "processing",
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }

    /// Whether a sub-status may move from `self` to `next`.
    ///
    /// `processing -> processing` is a new attempt after a transient failure or a lost worker;
    /// `failed -> pending` is an explicit retry. Completed work is never redone by a transition.
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Pending, Processing)
                | (Pending, Failed)
                | (Processing, Processing)
                | (Processing, Completed)
                | (Processing, Failed)
                | (Failed, Pending)
        )
    }

    /// `completed` or `failed`: no further work will happen without a retry.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed)
    }

    /// The overall `processing_status` for a pair of sub-statuses: `completed` when both are,
    /// `failed` when either failed for good, `pending` before anything started, else `processing`.
    pub fn overall(thumbnail: Status, variant: Status) -> Status {
        use Status::*;
        match (thumbnail, variant) {
            (Failed, _) | (_, Failed) => Failed,
            (Completed, Completed) => Completed,
            (Pending, Pending) => Pending,
            _ => Processing,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which half of the processing a status field belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The thumbnail set (`thumbnail_status`).
    Thumbnail,
    /// The display variants (`variant_status`).
    Variant,
}

impl Stage {
    /// Both stages.
    pub const ALL: [Stage; 2] = [Stage::Thumbnail, Stage::Variant];

    /// The stage's name as used in keys, notices and breaker rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Thumbnail => "thumbnail",
            Stage::Variant => "variant",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The machine-readable class of `processing_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Throttling, 5xx, timeouts: retried with backoff.
    Transient,
    /// Corrupt, unsupported, too large, type mismatch, source gone: not retried.
    Permanent,
    /// The upload itself was refused (e.g. the stored bytes are not the declared type).
    Rejected,
}

impl ErrorKind {
    /// The value as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::Permanent => "permanent",
            ErrorKind::Rejected => "rejected",
        }
    }
}

/// Where the original is in its upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadState {
    /// A presigned upload was handed out; the bytes have not arrived.
    AwaitingUpload,
    /// The original is in the bucket.
    Stored,
    /// The stored bytes were refused.
    Rejected,
    /// The presigned upload was never used before it expired (the sweeper's final state for
    /// such a row: both stages `failed`, `error_kind` `rejected`). Nothing is stored.
    Expired,
}

/// A transition the status model does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{stage} status cannot go from {from} to {to}")]
pub struct TransitionError {
    /// The stage whose status was to change.
    pub stage: Stage,
    /// Its current status.
    pub from: Status,
    /// The refused target.
    pub to: Status,
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::*;

    #[test]
    fn completed_work_is_never_reopened_by_a_transition() {
        for next in [Pending, Processing, Failed, Completed] {
            assert!(!Completed.can_become(next), "completed -> {next}");
        }
    }

    #[test]
    fn only_failed_work_can_be_retried() {
        assert!(Failed.can_become(Pending));
        assert!(!Failed.can_become(Processing));
        assert!(!Processing.can_become(Pending));
        assert!(!Pending.can_become(Completed));
    }

    #[test]
    fn overall_status_follows_the_design() {
        assert_eq!(Status::overall(Completed, Completed), Completed);
        assert_eq!(Status::overall(Completed, Failed), Failed);
        assert_eq!(Status::overall(Processing, Failed), Failed);
        assert_eq!(Status::overall(Pending, Pending), Pending);
        assert_eq!(Status::overall(Completed, Pending), Processing);
        assert_eq!(Status::overall(Pending, Processing), Processing);
    }
}
