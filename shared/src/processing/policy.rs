//! [`Policy`]: the tunables of the pipeline (backoff, circuit breaker, lease, write attempts,
//! the invocation-deadline margins and the deferral cap), with their defaults.

use std::time::Duration;

use crate::breaker::BreakerConfig;
use crate::retry::Backoff;

/// Tunables of the pipeline.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Backoff for transient failures.
    pub backoff: Backoff,
    /// Circuit-breaker settings.
    pub breaker: BreakerConfig,
    /// How long a worker holds the (stage, image) lease; at least the function timeout.
    pub lease: Duration,
    /// Attempts at a conditional row write before giving up as transient.
    pub write_attempts: u32,
    /// No message is started with less than this left before the invocation's deadline: the
    /// longest one image is expected to take.
    pub deadline_reserve: Duration,
    /// A message still running this long before the invocation's deadline marks its lease
    /// "out of time", so its next attempt knows it timed out rather than crashed.
    pub out_of_time_margin: Duration,
    /// The longest a message is deferred by an open circuit, counted from its first deferral:
    /// past it, the message is worked on (and fails on its last receive, to the DLQ) instead of
    /// being deferred again, so no outage or misconfiguration keeps an image waiting for ever.
    pub max_deferral: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            backoff: Backoff::default(),
            breaker: BreakerConfig::default(),
            lease: Duration::from_secs(60),
            write_attempts: 32,
            deadline_reserve: Duration::from_secs(8),
            out_of_time_margin: Duration::from_secs(2),
            max_deferral: Duration::from_secs(6 * 3600),
        }
    }
}
