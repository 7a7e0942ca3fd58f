//! What a message passes before its work starts: the stage's circuit breaker (admit, and record
//! failures and probe successes, each a read-decide-write on the breaker row retried on conflict
//! by [`Processor::on_breaker`]) and the (stage, image) processing lease.

use crate::breaker::{Admission, Breaker};
use crate::domain::{ImageId, Timestamp};
use crate::ports::{ControlStore, ImageRepository, JobQueue, Lease, ObjectStore, RepoError};

use super::rows::contention_pause;
use super::Processor;

impl<S: ObjectStore, R: ImageRepository, Q: JobQueue, C: ControlStore> Processor<S, R, Q, C> {
    /// Loads the breaker, lets `decide` change it, and saves it when it says so; on a lost race
    /// the whole step runs again on the new row. `decide` returns the result and whether to save.
    async fn on_breaker<T>(
        &self,
        decide: impl Fn(&mut Breaker) -> (T, bool),
    ) -> Result<T, RepoError> {
        for attempt in 0..self.policy.write_attempts {
            let (mut breaker, version) = self.control.load_breaker(self.stage).await?;
            let (result, changed) = decide(&mut breaker);
            if !changed {
                return Ok(result);
            }
            match self
                .control
                .save_breaker(self.stage, &breaker, version)
                .await
            {
                Ok(()) => return Ok(result),
                // Someone else moved the breaker (maybe took the probe): decide again.
                Err(RepoError::Conflict) => contention_pause(attempt).await,
                Err(e) => return Err(e),
            }
        }
        Err(RepoError::Conflict)
    }

    /// Asks the breaker; takes the probe with a conditional write when it is due.
    pub(super) async fn admit(&self) -> Result<Admission, RepoError> {
        let config = &self.policy.breaker;
        self.on_breaker(|b| b.admit(Timestamp::now(), config)).await
    }

    /// Counts a dependency failure; may open the circuit.
    pub(super) async fn breaker_failure(&self) {
        let now = Timestamp::now();
        let config = &self.policy.breaker;
        match self
            .on_breaker(|b| (b.record_failure(now, config), true))
            .await
        {
            Ok(true) => {
                crate::metrics::breaker_opened(self.stage);
                tracing::warn!("circuit opened");
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

    /// Takes the (stage, image) lease for the message `holder` for [`Policy::lease`](super::Policy).
    pub(super) async fn take_lease(
        &self,
        image: ImageId,
        holder: &str,
    ) -> Result<Lease, RepoError> {
        let now = Timestamp::now();
        let until =
            Timestamp::from_unix_millis(now.unix_millis() + self.policy.lease.as_millis() as i64);
        self.control
            .acquire_lease(self.stage, image, holder, until, now)
            .await
    }

    /// Gives the lease up; a failure only means it expires by itself.
    pub(super) async fn release_lease(&self, image: ImageId, holder: &str) {
        if let Err(e) = self.control.release_lease(self.stage, image, holder).await {
            tracing::warn!(error = %e, "could not release the lease; it expires by itself");
        }
    }
}
