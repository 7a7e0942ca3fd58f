//! What becomes of one message: its jobs past the circuit breaker, each run by the stage work,
//! and the verdict (acknowledge, retry, defer, or give up on the last receive and mark failed).

use std::ops::ControlFlow;

use super::redelivery::Verdict;
use super::stage::Ran;
use super::{JobFailure, Message, Processor, RowWriter};
use crate::breaker::Admission;
use crate::domain::{ErrorKind, Job};
use crate::events::parse_jobs;
use crate::ports::{ControlStore, ImageRepository, JobQueue, ObjectStore};
use crate::retry::{is_last_receive, MAX_RECEIVES};

impl<S: ObjectStore, R: ImageRepository, Q: JobQueue, C: ControlStore> Processor<S, R, Q, C> {
    /// The images table's row writer, with the policy's attempts.
    fn rows(&self) -> RowWriter<'_, R> {
        RowWriter::new(&self.images, self.policy.write_attempts)
    }

    /// What becomes of one message: its jobs run through the breaker, the leases, the stage
    /// work and the row writes.
    pub(super) async fn handle_message(&self, m: &Message) -> Verdict {
        let jobs = match parse_jobs(&m.body) {
            Ok(jobs) => jobs,
            Err(e) => {
                // Not ours to drop silently: it goes to the DLQ after its receives, for a human.
                tracing::error!(error = %e, "unreadable message");
                self.queue.back_off(m).await;
                return Verdict::Retry;
            }
        };
        if jobs.is_empty() {
            tracing::info!("no originals in this message (test event or other prefix); skipped");
            return Verdict::Ack;
        }
        let probing = match self.pass_the_breaker(m, &jobs).await {
            ControlFlow::Continue(probing) => probing,
            ControlFlow::Break(verdict) => return verdict,
        };

        let mut verdict = Verdict::Ack;
        // Jobs whose last receive failed, with the reason, and whether only dependencies'
        // outages caused them.
        let mut gave_up: Vec<(&Job, String)> = Vec::new();
        let mut outages_only = true;
        for job in &jobs {
            tracing::Span::current().record("image_id", tracing::field::display(job.image_id));
            match self
                .work
                .run(job, &m.holder(), self.rows(), &self.gate)
                .await
            {
                Ok(Ran::Busy { until }) => {
                    // A duplicate delivery of this very message while its attempt runs: the live
                    // attempt decides. Come back when its lease runs out (it will have released
                    // it, or died); on the last receive, leave the message to the live attempt
                    // (the stale-row sweep ends a row that attempt could not).
                    if !is_last_receive(m.receive_count) {
                        self.queue.hide_until(m, until).await;
                        verdict = Verdict::Retry;
                    }
                }
                Ok(ran) => {
                    // Only a stage that really ran tells the probe the dependencies are back.
                    if probing && ran == Ran::Yes {
                        self.gate.record_success().await;
                    }
                }
                Err(JobFailure::Permanent { kind, message, .. }) => {
                    // The file was bad, the dependencies answered: a probe that gets here passed.
                    if probing {
                        self.gate.record_success().await;
                    }
                    crate::metrics::failure(self.stage, kind);
                    tracing::warn!(error_kind = kind.as_str(), reason = %message, "permanent failure; not retried");
                    if let Err(e) = self
                        .rows()
                        .finish_failed(self.stage, job.image_id, kind, &message)
                        .await
                    {
                        tracing::error!(error = %e, "could not record the failure; retrying");
                        self.queue.back_off(m).await;
                        verdict = Verdict::Retry;
                    }
                }
                Err(failure) => {
                    verdict = Verdict::Retry;
                    let outage = failure.counts_against_breaker();
                    if outage {
                        self.gate.record_failure().await;
                    }
                    crate::metrics::failure(self.stage, ErrorKind::Transient);
                    let reason = failure.to_string();
                    if is_last_receive(m.receive_count) {
                        outages_only &= outage;
                        gave_up.push((job, reason));
                    } else {
                        tracing::warn!(reason = %reason, "transient failure; backing off");
                        self.rows()
                            .note_transient(self.stage, job.image_id, &reason)
                            .await;
                        self.queue.back_off(m).await;
                    }
                }
            }
        }
        if gave_up.is_empty() {
            return verdict;
        }
        // An outage outlasted the receives (the first images of an outage spend theirs before
        // the circuit opens): the message waits like a deferred one. Anything else (a refusal,
        // a lost race every time, the cap reached) fails the image on to the DLQ.
        if outages_only && self.wait_out(m).await {
            for (job, reason) in &gave_up {
                self.rows()
                    .note_transient(self.stage, job.image_id, reason)
                    .await;
            }
            return Verdict::Ack;
        }
        self.give_up(m, &gave_up).await
    }

    /// Asks the circuit breaker: go ahead (as the half-open probe, or not), or what became of
    /// the message instead (deferred while open; retried, or given up on its last receive,
    /// when the breaker cannot be read).
    async fn pass_the_breaker(&self, m: &Message, jobs: &[Job]) -> ControlFlow<Verdict, bool> {
        match self.gate.admit().await {
            Ok(Admission::Proceed) => ControlFlow::Continue(false),
            Ok(Admission::Probe) => {
                tracing::info!("circuit half-open: this message is the probe");
                ControlFlow::Continue(true)
            }
            Ok(Admission::DeferUntil(until)) => {
                if !self.queue.deferred_too_long(m) {
                    return ControlFlow::Break(self.queue.defer(m, until).await);
                }
                tracing::warn!(
                    deferred_since = ?m.deferred_since,
                    "circuit open, but this message has been deferred for the longest allowed: working on it (it fails on its last receive if the outage goes on)"
                );
                ControlFlow::Continue(false)
            }
            Err(e) => {
                tracing::warn!(error = %e, "circuit breaker unreadable; retrying later");
                if !is_last_receive(m.receive_count) {
                    self.queue.back_off(m).await;
                    return ControlFlow::Break(Verdict::Retry);
                }
                // The control table's outage outlasted the receives: wait like a deferral.
                if self.wait_out(m).await {
                    return ControlFlow::Break(Verdict::Ack);
                }
                // Give up on the row now rather than leave it `processing` behind the DLQ.
                let reason = format!("the circuit breaker could not be read ({e})");
                let gave_up: Vec<(&Job, String)> =
                    jobs.iter().map(|j| (j, reason.clone())).collect();
                ControlFlow::Break(self.give_up(m, &gave_up).await)
            }
        }
    }

    /// On the last receive, an outage is waited out like a deferral: a fresh copy after the
    /// breaker's cool-down, within the same cap on the message's total deferral. Whether the
    /// message was deferred so.
    async fn wait_out(&self, m: &Message) -> bool {
        !self.queue.deferred_too_long(m) && self.queue.defer_after_cooldown(m).await == Verdict::Ack
    }

    /// The last receive failed: marks each job's stage failed with its reason, and hurries the
    /// message to the DLQ.
    async fn give_up(&self, m: &Message, gave_up: &[(&Job, String)]) -> Verdict {
        for (job, reason) in gave_up {
            let message = format!("gave up after {MAX_RECEIVES} attempts: {reason}");
            tracing::error!(reason = %reason, "last attempt failed; marking failed before the DLQ");
            if let Err(e) = self
                .rows()
                .finish_failed(self.stage, job.image_id, ErrorKind::Transient, &message)
                .await
            {
                tracing::error!(error = %e, "could not mark the image failed; the sweeper will");
            }
        }
        self.queue.dead_letter_now(m).await;
        Verdict::Retry
    }
}
