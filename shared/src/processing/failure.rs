//! Why a job did not complete ([`JobFailure`]), classified the way the pipeline acts on it:
//! transient (retried, counted by the circuit breaker), refused (retried, not counted),
//! retryable (not a dependency's fault) or permanent (the stage fails for good).

use crate::domain::ErrorKind;
use crate::ports::{BoxError, RepoError, StoreError};

use super::rows::RowError;

/// The dependency that failed, with its error.
#[derive(Debug, thiserror::Error)]
pub enum Dependency {
    /// The images or control table.
    #[error(transparent)]
    Table(#[from] RepoError),
    /// The bucket.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a job did not complete.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    /// A dependency failed (throttling, 5xx, timeouts, injected faults): retried with backoff
    /// and counted by the circuit breaker.
    #[error(transparent)]
    Transient(Dependency),
    /// A dependency refused the call (access denied, an unusable KMS key, a missing bucket or
    /// table): retried with backoff in case the fix is deployed meanwhile, but not counted by
    /// the circuit breaker, so a misconfiguration fails images on their last receive (dead
    /// letters, alarms) instead of holding the circuit open and deferring work for ever.
    #[error(transparent)]
    Refused(Dependency),
    /// Retried with backoff like a transient failure, but not a dependency's fault (a lost
    /// write race, an interrupted render), so the circuit breaker does not count it.
    #[error("{reason}")]
    Retryable {
        /// What happened.
        reason: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// Retrying will not help; the message is for the user.
    #[error("{message}")]
    Permanent {
        /// `permanent` or `rejected`.
        kind: ErrorKind,
        /// Readable reason.
        message: String,
        /// The underlying error (an engine error, a missing object), when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

impl JobFailure {
    /// Whether the circuit breaker counts this failure.
    pub fn counts_against_breaker(&self) -> bool {
        matches!(self, JobFailure::Transient(_))
    }

    /// A retryable failure without an underlying error.
    pub fn retryable(reason: impl Into<String>) -> Self {
        JobFailure::Retryable {
            reason: reason.into(),
            source: None,
        }
    }

    /// A permanent failure of `kind` without an underlying error.
    pub fn permanent(kind: ErrorKind, message: impl Into<String>) -> Self {
        JobFailure::Permanent {
            kind,
            message: message.into(),
            source: None,
        }
    }
}

impl From<RepoError> for JobFailure {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Conflict => JobFailure::Retryable {
                reason: e.to_string(),
                source: Some(Box::new(e)),
            },
            RepoError::Refused(_) => JobFailure::Refused(Dependency::Table(e)),
            _ => JobFailure::Transient(Dependency::Table(e)),
        }
    }
}

impl From<StoreError> for JobFailure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => JobFailure::Permanent {
                kind: ErrorKind::Permanent,
                message: "the original file no longer exists".to_owned(),
                source: Some(Box::new(e)),
            },
            StoreError::Unavailable(_) => JobFailure::Transient(Dependency::Store(e)),
            StoreError::Refused(_) => JobFailure::Refused(Dependency::Store(e)),
        }
    }
}

impl From<RowError> for JobFailure {
    fn from(e: RowError) -> Self {
        let reason = e.to_string();
        match e {
            RowError::Repo(e) => e.into(),
            RowError::Transition(e) => JobFailure::Retryable {
                reason,
                source: Some(Box::new(e)),
            },
            RowError::KeptChanging => JobFailure::Retryable {
                reason,
                source: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dependency_failures_count_against_the_breaker_and_keep_their_source() {
        use std::error::Error as _;
        let timeout = JobFailure::from(RepoError::Unavailable("timeout".into()));
        assert!(timeout.counts_against_breaker());
        assert!(timeout.source().is_some(), "the repository error is kept");
        assert!(JobFailure::from(StoreError::Unavailable("503".into())).counts_against_breaker());
        let race = JobFailure::from(RepoError::Conflict);
        assert_eq!(race.to_string(), "the image row changed concurrently");
        assert!(!race.counts_against_breaker());
        let gone = JobFailure::from(StoreError::NotFound("k".into()));
        assert!(matches!(
            gone,
            JobFailure::Permanent {
                kind: ErrorKind::Permanent,
                ..
            }
        ));
        assert!(gone.source().is_some());
        assert!(!gone.counts_against_breaker());
    }
}
