//! Circuit breakers as operators see them, and closing one by hand.

use serde::Serialize;

use crate::breaker::{Breaker, BreakerConfig, CircuitState};
use crate::domain::{Stage, Timestamp};
use crate::ports::{BreakerWrite, ControlStore, RepoError};

/// How often a reset re-reads and retries after losing a write race with a processor.
const RESET_ATTEMPTS: u32 = 16;

/// One breaker in the admin view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CircuitView {
    /// The stage it guards.
    pub stage: Stage,
    /// `closed`, `open` or `half_open`.
    pub state: CircuitState,
    /// When it opened last.
    pub opened_at: Option<Timestamp>,
    /// Transient failures remembered within the window.
    pub failures_in_window: usize,
    /// Failures within the window that open it.
    pub threshold: u32,
    /// Seconds until the next half-open probe may start (`null` while closed).
    pub next_probe_in_secs: Option<u64>,
    /// How many times it has opened.
    pub times_opened: u64,
    /// When an operator last closed it by hand.
    pub reset_at: Option<Timestamp>,
    /// Who did.
    pub reset_by: Option<String>,
}

impl CircuitView {
    /// The view of `breaker` at `now`.
    pub fn new(stage: Stage, breaker: &Breaker, now: Timestamp, config: &BreakerConfig) -> Self {
        CircuitView {
            stage,
            state: breaker.state,
            opened_at: breaker.opened_at,
            failures_in_window: breaker.failures_in_window(now, config),
            threshold: config.threshold,
            next_probe_in_secs: breaker.next_probe_in_secs(now),
            times_opened: breaker.times_opened,
            reset_at: breaker.reset_at,
            reset_by: breaker.reset_by.clone(),
        }
    }
}

/// The answer to a reset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResetDone {
    /// The stage.
    pub stage: Stage,
    /// Always `closed`.
    pub state: CircuitState,
    /// State before the reset.
    pub previous_state: CircuitState,
    /// When.
    pub reset_at: Timestamp,
    /// Who.
    pub reset_by: String,
}

/// Closes the stage's breaker by hand, recording who and when on its row. A conditional write on
/// the row's version: a processor writing at the same moment makes it re-read and apply again.
pub async fn reset_circuit<C: ControlStore>(
    control: &C,
    stage: Stage,
    by: &str,
    now: Timestamp,
) -> Result<ResetDone, RepoError> {
    for _ in 0..RESET_ATTEMPTS {
        let (mut breaker, version) = control.load_breaker(stage).await?;
        let previous_state = breaker.state;
        breaker.reset(now, by);
        let write = BreakerWrite {
            stage,
            breaker: &breaker,
            expected_version: version,
        };
        match control.save_breaker(write).await {
            Ok(()) => {
                tracing::info!(stage = %stage, previous = ?previous_state, by, "circuit closed by hand");
                return Ok(ResetDone {
                    stage,
                    state: breaker.state,
                    previous_state,
                    reset_at: now,
                    reset_by: by.to_owned(),
                });
            }
            Err(RepoError::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(RepoError::Conflict)
}
