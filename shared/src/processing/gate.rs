//! [`Gate`]: what a message passes before its work starts, over the control table: the stage's
//! circuit breaker (admit, and record failures and probe successes, each a read-decide-write on
//! the breaker row retried on conflict) and the (stage, image) processing leases.
//!
//! The gate keeps this process's own view of the breaker: the row it last read or wrote
//! (admissions decide from it for [`BreakerConfig::cache_ttl`] when the decision changes
//! nothing, so the hot row is not read per message) and its own attempts, reported with each
//! failure so the breaker can tell an outage from background noise (see [`crate::breaker`]).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::breaker::{Admission, AttemptWindow, Breaker, BreakerConfig, CachedCircuit};
use crate::domain::{ImageId, Stage, Timestamp};
use crate::ports::{BreakerWrite, ControlStore, Holder, Lease, LeaseKey, LeaseRequest, RepoError};

use super::rows::contention_pause;
use super::Policy;

/// Tries at giving a lease up before leaving it to expire.
const RELEASE_TRIES: u32 = 4;

/// The circuit breaker and the processing leases of one stage, with this process's view of the
/// breaker.
#[derive(Debug)]
pub struct Gate<C> {
    stage: Stage,
    control: C,
    breaker: BreakerConfig,
    lease: Duration,
    write_attempts: u32,
    view: Mutex<View>,
}

/// The breaker row last read or written, and the attempts not yet reported.
#[derive(Debug, Default)]
struct View {
    cached: Option<CachedCircuit>,
    attempts: AttemptWindow,
}

impl<C: ControlStore> Gate<C> {
    /// The gate of `stage` over `control`, with the policy's breaker settings, lease length and
    /// write attempts.
    pub fn new(stage: Stage, control: C, policy: &Policy) -> Self {
        Gate {
            stage,
            control,
            breaker: policy.breaker,
            lease: policy.lease,
            write_attempts: policy.write_attempts,
            view: Mutex::default(),
        }
    }

    fn view(&self) -> MutexGuard<'_, View> {
        // Nothing in the lock can panic half-way; a poisoned lock still holds a usable view.
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remember(&self, breaker: &Breaker, version: u64) {
        self.view().cached = Some(CachedCircuit {
            breaker: breaker.clone(),
            version,
            at: Timestamp::now(),
        });
    }

    /// Loads the breaker, lets `decide` change it, and saves it when it says so; on a lost race
    /// the whole step runs again on the new row. `decide` returns the result and whether to save.
    /// What was read or written becomes the cached view.
    async fn on_breaker<T>(
        &self,
        mut decide: impl FnMut(&mut Breaker) -> (T, bool),
    ) -> Result<T, RepoError> {
        for attempt in 0..self.write_attempts {
            let (mut breaker, version) = self.control.load_breaker(self.stage).await?;
            let before = breaker.clone();
            let (result, changed) = decide(&mut breaker);
            if !changed {
                self.remember(&before, version);
                return Ok(result);
            }
            match self
                .control
                .save_breaker(BreakerWrite {
                    stage: self.stage,
                    breaker: &breaker,
                    expected_version: version,
                })
                .await
            {
                Ok(()) => {
                    self.remember(&breaker, version + 1);
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
    pub async fn admit(&self) -> Result<Admission, RepoError> {
        let config = &self.breaker;
        let now = Timestamp::now();
        let cached = self
            .view()
            .cached
            .as_ref()
            .and_then(|c| c.admit(now, config));
        let admission = match cached {
            Some(admission) => admission,
            None => {
                self.on_breaker(|b| b.admit(Timestamp::now(), config))
                    .await?
            }
        };
        if matches!(admission, Admission::Proceed | Admission::Probe) {
            self.view().attempts.record(now, config);
        }
        Ok(admission)
    }

    /// Counts a dependency failure, with this process's attempts behind it; may open the
    /// circuit.
    pub async fn record_failure(&self) {
        let now = Timestamp::now();
        let config = &self.breaker;
        let attempts = self.view().attempts.take_unreported(now, config);
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
    pub async fn record_success(&self) {
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

    /// The lease of `image` at this gate's stage.
    fn lease_key(&self, image: ImageId) -> LeaseKey {
        LeaseKey {
            stage: self.stage,
            image,
        }
    }

    /// Takes the (stage, image) lease for this receive of a message for [`Policy::lease`].
    pub async fn take_lease(
        &self,
        image: ImageId,
        holder: &Holder<'_>,
    ) -> Result<Lease, RepoError> {
        let now = Timestamp::now();
        let until = Timestamp::from_unix_millis(now.unix_millis() + self.lease.as_millis() as i64);
        self.control
            .acquire_lease(&LeaseRequest {
                lease: self.lease_key(image),
                holder: *holder,
                until,
                now,
            })
            .await
    }

    /// Gives the lease up, trying a few times: a lease left behind reads as an abandoned
    /// attempt to this message's next receive (which then runs alone, and a second one fails
    /// the stage), so a blip here must not be the last word. If every try fails, it expires by
    /// itself.
    pub async fn release_lease(&self, image: ImageId, holder: &Holder<'_>) {
        for attempt in 0..RELEASE_TRIES {
            match self
                .control
                .release_lease(self.lease_key(image), holder)
                .await
            {
                Ok(()) => return,
                Err(e) if attempt + 1 == RELEASE_TRIES => {
                    tracing::warn!(error = %e, "could not release the lease; it expires by itself");
                }
                Err(_) => contention_pause(attempt + 4).await,
            }
        }
    }

    /// Marks the holder's lease on `image` "out of time": its attempt is still running near the
    /// invocation's deadline, so its next receive knows it timed out rather than crashed.
    pub async fn mark_out_of_time(&self, image: ImageId, holder: &Holder<'_>) {
        if let Err(e) = self
            .control
            .mark_out_of_time(self.lease_key(image), holder)
            .await
        {
            tracing::warn!(error = %e, "could not mark the lease out of time; a timeout will count as a crash");
        }
    }

    /// Whether the holder's previous attempt at `image` never ended, for the first time: the
    /// lease is still its message's, taken by an earlier receive, and run out at `now`.
    pub async fn abandoned_once(
        &self,
        image: ImageId,
        holder: &Holder<'_>,
        now: Timestamp,
    ) -> bool {
        match self.control.lease(self.lease_key(image)).await {
            Ok(Some(lease)) => {
                lease.holder == holder.message_id
                    && lease.receive < holder.receive
                    && lease.until < now
                    && lease.attempts < 2
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the lease");
                false
            }
        }
    }
}

#[cfg(all(test, feature = "testing"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::breaker::CircuitState;
    use crate::testing::MemoryControl;

    fn gate() -> Gate<MemoryControl> {
        Gate::new(
            Stage::Thumbnail,
            MemoryControl::default(),
            &Policy::default(),
        )
    }

    #[tokio::test]
    async fn five_failures_behind_five_attempts_open_the_circuit_and_the_next_message_is_deferred()
    {
        let gate = gate();
        for _ in 0..5 {
            assert_eq!(gate.admit().await.unwrap(), Admission::Proceed);
            gate.record_failure().await;
        }
        assert_eq!(
            gate.control.breaker(Stage::Thumbnail).state,
            CircuitState::Open
        );
        assert!(matches!(
            gate.admit().await.unwrap(),
            Admission::DeferUntil(_)
        ));
    }

    #[tokio::test]
    async fn after_the_cool_down_one_probe_goes_through_and_its_success_closes_the_circuit() {
        let gate = gate();
        gate.control.set_breaker(
            Stage::Thumbnail,
            Breaker {
                state: CircuitState::Open,
                until: Some(Timestamp::now().plus_secs(-1)),
                times_opened: 1,
                ..Breaker::default()
            },
        );
        assert_eq!(gate.admit().await.unwrap(), Admission::Probe);
        assert!(
            matches!(gate.admit().await.unwrap(), Admission::DeferUntil(_)),
            "one probe at a time"
        );
        gate.record_success().await;
        assert_eq!(
            gate.control.breaker(Stage::Thumbnail).state,
            CircuitState::Closed
        );
    }

    #[tokio::test]
    async fn a_lease_run_out_under_its_own_message_is_abandoned_once_and_a_released_one_is_not() {
        let gate = gate();
        let image = ImageId::new();
        let first = Holder {
            message_id: "m1",
            receive: 1,
        };
        let second = Holder {
            message_id: "m1",
            receive: 2,
        };
        assert_eq!(gate.take_lease(image, &first).await.unwrap(), Lease::Taken);
        let now = Timestamp::now();
        assert!(
            !gate.abandoned_once(image, &second, now).await,
            "live: a duplicate, not an abandonment"
        );
        let later = now.plus_secs(3600);
        assert!(gate.abandoned_once(image, &second, later).await);
        let other = Holder {
            message_id: "m2",
            receive: 2,
        };
        assert!(!gate.abandoned_once(image, &other, later).await);
        gate.release_lease(image, &first).await;
        assert!(gate.control.lease_of(Stage::Thumbnail, image).is_none());
        assert!(!gate.abandoned_once(image, &second, later).await);
    }
}
