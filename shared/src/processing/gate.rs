//! What a message passes before its work starts: the stage's circuit breaker (admit, and record
//! failures and probe successes, each a read-decide-write on the breaker row retried on conflict
//! by [`Processor::on_breaker`]) and the (stage, image) processing lease.
//!
//! The process's own view of the breaker lives in [`GateState`]: the row it last read or wrote
//! (admissions decide from it for [`BreakerConfig::cache_ttl`] when the decision changes
//! nothing, so the hot row is not read per message) and its own attempts, reported with each
//! failure so the breaker can tell an outage from background noise (see [`crate::breaker`]).

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::breaker::{Admission, AttemptWindow, Breaker, BreakerConfig, CachedCircuit};
use crate::domain::{ImageId, Timestamp};
use crate::ports::{
    ControlStore, Holder, ImageRepository, JobQueue, Lease, ObjectStore, RepoError,
};

use super::rows::contention_pause;
use super::Processor;

/// One process's view of its stage's breaker (see the module documentation).
#[derive(Debug, Default)]
pub struct GateState {
    inner: Mutex<GateInner>,
}

#[derive(Debug, Default)]
struct GateInner {
    cached: Option<CachedCircuit>,
    attempts: AttemptWindow,
}

impl GateState {
    fn lock(&self) -> MutexGuard<'_, GateInner> {
        // Nothing in the lock can panic half-way; a poisoned lock still holds a usable view.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cached_admission(&self, now: Timestamp, config: &BreakerConfig) -> Option<Admission> {
        self.lock().cached.as_ref()?.admit(now, config)
    }

    fn remember(&self, breaker: &Breaker, version: u64) {
        self.lock().cached = Some(CachedCircuit {
            breaker: breaker.clone(),
            version,
            at: Timestamp::now(),
        });
    }

    fn attempt(&self, now: Timestamp, config: &BreakerConfig) {
        self.lock().attempts.record(now, config);
    }

    fn unreported_attempts(&self, now: Timestamp, config: &BreakerConfig) -> u32 {
        self.lock().attempts.take_unreported(now, config)
    }
}

impl<S: ObjectStore, R: ImageRepository, Q: JobQueue, C: ControlStore> Processor<S, R, Q, C> {
    /// Loads the breaker, lets `decide` change it, and saves it when it says so; on a lost race
    /// the whole step runs again on the new row. `decide` returns the result and whether to save.
    /// What was read or written becomes the process's cached view.
    async fn on_breaker<T>(
        &self,
        mut decide: impl FnMut(&mut Breaker) -> (T, bool),
    ) -> Result<T, RepoError> {
        for attempt in 0..self.policy.write_attempts {
            let (mut breaker, version) = self.control.load_breaker(self.stage).await?;
            let before = breaker.clone();
            let (result, changed) = decide(&mut breaker);
            if !changed {
                self.gate.remember(&before, version);
                return Ok(result);
            }
            match self
                .control
                .save_breaker(self.stage, &breaker, version)
                .await
            {
                Ok(()) => {
                    self.gate.remember(&breaker, version + 1);
                    return Ok(result);
                }
                // Someone else moved the breaker (maybe took the probe): decide again.
                Err(RepoError::Conflict) => contention_pause(attempt).await,
                Err(e) => return Err(e),
            }
        }
        Err(RepoError::Conflict)
    }

    /// Asks the breaker (the cached row while fresh; a probe only with a conditional write on a
    /// fresh read) and counts the attempt when work may go ahead.
    pub(super) async fn admit(&self) -> Result<Admission, RepoError> {
        let config = &self.policy.breaker;
        let now = Timestamp::now();
        let admission = match self.gate.cached_admission(now, config) {
            Some(admission) => admission,
            None => {
                self.on_breaker(|b| b.admit(Timestamp::now(), config))
                    .await?
            }
        };
        if matches!(admission, Admission::Proceed | Admission::Probe) {
            self.gate.attempt(now, config);
        }
        Ok(admission)
    }

    /// Counts a dependency failure, with this process's attempts behind it; may open the
    /// circuit.
    pub(super) async fn breaker_failure(&self) {
        let now = Timestamp::now();
        let config = &self.policy.breaker;
        let attempts = self.gate.unreported_attempts(now, config);
        match self
            .on_breaker(|b| (b.record_failure(now, attempts, config), true))
            .await
        {
            Ok(true) => {
                crate::metrics::breaker_opened(self.stage);
                tracing::warn!(attempts, "circuit opened");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not record the failure in the circuit breaker");
            }
        }
    }

    /// A half-open probe's stage really ran: closes the circuit.
    pub(super) async fn breaker_success(&self) {
        match self
            .on_breaker(|b| {
                let closed = b.record_success();
                (closed, closed)
            })
            .await
        {
            Ok(true) => {
                crate::metrics::breaker_closed(self.stage);
                tracing::info!("circuit closed by a successful probe");
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not close the circuit"),
        }
    }

    /// Takes the (stage, image) lease for this receive of a message for
    /// [`Policy::lease`](super::Policy).
    pub(super) async fn take_lease(
        &self,
        image: ImageId,
        holder: &Holder<'_>,
    ) -> Result<Lease, RepoError> {
        let now = Timestamp::now();
        let until =
            Timestamp::from_unix_millis(now.unix_millis() + self.policy.lease.as_millis() as i64);
        self.control
            .acquire_lease(self.stage, image, holder, until, now)
            .await
    }

    /// Gives the lease up, trying a few times: a lease left behind reads as an abandoned
    /// attempt to this message's next receive (which then runs alone, and a second one fails
    /// the stage), so a blip here must not be the last word. If every try fails, it expires by
    /// itself.
    pub(super) async fn release_lease(&self, image: ImageId, holder: &Holder<'_>) {
        const TRIES: u32 = 4;
        for attempt in 0..TRIES {
            match self.control.release_lease(self.stage, image, holder).await {
                Ok(()) => return,
                Err(e) if attempt + 1 == TRIES => {
                    tracing::warn!(error = %e, "could not release the lease; it expires by itself");
                }
                Err(_) => contention_pause(attempt + 4).await,
            }
        }
    }
}
