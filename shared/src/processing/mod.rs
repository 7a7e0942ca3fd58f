//! The processing pipeline shared by the `thumbnail` and `variant` functions: one SQS batch in,
//! the ids of the messages to keep out. Generic over the ports; no AWS types.
//!
//! Per message: parse the job(s) → ask the circuit breaker (open: re-send a delayed copy and
//! drop the original, so no receive is used up) → take the (stage, image) lease (held by
//! someone else: a duplicate delivery, dropped) → `pending|processing -> processing` → fetch the
//! original, check its bytes are the declared type and size → render every spec from one decode →
//! store the derivatives under deterministic keys → `processing -> completed`.
//!
//! Failures: permanent ones (corrupt, unsupported, too large, type or size mismatch, original
//! gone) mark the stage failed with a reason and drop the message. Transient ones are counted by
//! the breaker, noted on the row, and retried after `min(cap, base·2^(receive-1))` with full
//! jitter; on the last receive the stage is marked failed and the message made visible at once,
//! so SQS moves it to the DLQ within seconds. A panic in one message is that message's failure
//! only.
//!
//! Crashes and deadlines: an attempt releases its lease however it ends (retrying the release),
//! and the lease names the message and the receive that took it. A later receive that finds its
//! own message's lease run out knows that attempt never ended (a crash, an out-of-memory kill
//! maybe caused by a batch-mate, a timeout, or releases that all failed): it runs once more,
//! first and alone (the rest of its batch is re-sent), and a second abandonment in a row fails
//! the stage ("crashed twice", or "ran out of time twice" when the attempt still running
//! [`Policy::out_of_time_margin`] before its deadline marked its lease). A later receive that
//! finds its own message's lease live is a duplicate delivery of a running attempt: hidden until
//! that lease runs out, never failed for it. A batch stops starting messages
//! [`Policy::deadline_reserve`] before the invocation's deadline and re-sends the rest as fresh
//! copies (no receive used up). Whatever still gives up without a row update (a message that
//! reaches a DLQ some other way) is marked failed by the `sweeper`.
//!
//! An open circuit defers a message by re-sending a delayed copy that carries when its deferrals
//! began; after [`Policy::max_deferral`] it is worked on instead. Refusals (access denied, a KMS
//! key, a missing resource) are retried but not counted by the breaker, so a misconfiguration
//! ends in failed images and dead letters, not in deferrals for ever.
//!
//! Idempotency: derivative keys depend only on (image, spec), so a repeat writes the same
//! objects; row changes are conditional writes on `version`, re-read and re-decided on conflict
//! ([`rows`]), and a completed stage is never redone. A crash between storing derivatives and
//! completing the row leaves the stage `processing` and its lease held; the redelivered message
//! then fails it as crashed, and the owner's retry redoes it.
//!
//! Layout: this module (batch loop, verdicts, failures), [`gate`] (circuit breaker and lease),
//! [`rows`] (conditional row writes with one retry-on-conflict helper), [`stage`] (one job:
//! fetch, check, render, store, complete).

pub mod gate;
pub mod rows;
pub mod stage;

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt as _;
use tracing::Instrument as _;

use crate::breaker::{Admission, BreakerConfig};
use crate::domain::{ErrorKind, Job, Stage, Timestamp};
use crate::engine::{Limits, Spec};
use crate::events::parse_jobs;
use crate::ports::{
    BoxError, ControlStore, ImageRepository, JobQueue, ObjectStore, RepoError, StoreError,
};
use crate::retry::{is_last_receive, Backoff, MAX_RECEIVES};

use stage::Ran;

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
    pub fn holder(&self) -> crate::ports::Holder<'_> {
        crate::ports::Holder {
            message_id: &self.message_id,
            receive: self.receive_count,
        }
    }
}

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

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Done with it: SQS deletes it.
    Ack,
    /// Keep it: SQS redelivers it after its (changed) visibility timeout.
    Retry,
}

/// The pipeline for one stage, over its ports.
#[derive(Debug)]
pub struct Processor<S, R, Q, C> {
    stage: Stage,
    specs: Vec<Spec>,
    limits: Limits,
    policy: Policy,
    store: S,
    images: R,
    queue: Q,
    control: C,
    gate: gate::GateState,
}

/// Adapters a processor runs on.
#[derive(Debug)]
pub struct Ports<S, R, Q, C> {
    /// The bucket.
    pub store: S,
    /// The images table.
    pub images: R,
    /// The stage's queue.
    pub queue: Q,
    /// The control table.
    pub control: C,
}

impl<S: ObjectStore, R: ImageRepository, Q: JobQueue, C: ControlStore> Processor<S, R, Q, C> {
    /// A processor for `stage` rendering `specs`.
    pub fn new(
        stage: Stage,
        specs: Vec<Spec>,
        limits: Limits,
        policy: Policy,
        ports: Ports<S, R, Q, C>,
    ) -> Self {
        Processor {
            stage,
            specs,
            limits,
            policy,
            store: ports.store,
            images: ports.images,
            queue: ports.queue,
            control: ports.control,
            gate: gate::GateState::default(),
        }
    }

    /// Processes a batch with no deadline; returns the ids of the messages that must stay in
    /// the queue.
    pub async fn handle_batch(&self, messages: &[Message]) -> Vec<String> {
        self.handle_batch_until(messages, None).await
    }

    /// Processes a batch, starting no message with less than [`Policy::deadline_reserve`] left
    /// before `deadline` (the invocation's); the messages not started are re-sent as fresh
    /// copies, or kept when that fails. Returns the ids of the messages that must stay.
    pub async fn handle_batch_until(
        &self,
        messages: &[Message],
        deadline: Option<Timestamp>,
    ) -> Vec<String> {
        // Redelivered messages first: one whose previous attempt ran out of time then gets the
        // invocation to itself (below), with its whole budget.
        let mut order: Vec<&Message> = messages.iter().collect();
        order.sort_by_key(|m| std::cmp::Reverse(m.receive_count));
        let mut keep = Vec::new();
        for (i, m) in order.iter().copied().enumerate() {
            let span = tracing::info_span!(
                "message",
                stage = %self.stage,
                message_id = %m.message_id,
                receive_count = m.receive_count,
                image_id = tracing::field::Empty
            );
            if let Some(deadline) = deadline {
                let left = deadline.unix_millis() - Timestamp::now().unix_millis();
                if left < self.policy.deadline_reserve.as_millis() as i64 {
                    span.in_scope(|| {
                        tracing::warn!(
                            left_ms = left,
                            not_started = order.len() - i,
                            "invocation deadline near: re-sending the messages not started"
                        );
                    });
                    for rest in &order[i..] {
                        if self.requeue_now(rest).await == Verdict::Retry {
                            keep.push(rest.message_id.clone());
                        }
                    }
                    break;
                }
            }
            let alone = i + 1 < order.len() && self.abandoned_before(m).await;
            if alone {
                span.in_scope(|| {
                    tracing::warn!(
                        others = order.len() - i - 1,
                        "its previous attempt never ended (a crash or a timeout): re-sending the rest of the batch so it runs alone"
                    );
                });
                for rest in &order[i + 1..] {
                    if self.requeue_now(rest).await == Verdict::Retry {
                        keep.push(rest.message_id.clone());
                    }
                }
            }
            // Boxed: keeps the future's type shallow enough for the compiler's layout queries.
            let work = AssertUnwindSafe(Box::pin(self.handle_message(m)).instrument(span.clone()))
                .catch_unwind();
            let outcome = match deadline {
                Some(deadline) => self.watch_the_clock(m, work, deadline).await,
                None => work.await,
            };
            let verdict = match outcome {
                Ok(v) => v,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    span.in_scope(|| tracing::error!(panic = %what, "processing panicked; the message will be retried"));
                    Verdict::Retry
                }
            };
            if verdict == Verdict::Retry {
                keep.push(m.message_id.clone());
            }
            if alone {
                break;
            }
        }
        keep
    }

    /// Runs one message's work; if it is still running [`Policy::out_of_time_margin`] before the
    /// invocation's deadline, marks its leases "out of time" (Lambda ends the invocation at the
    /// deadline, and the redelivery then gets another chance instead of failing as a crash),
    /// and keeps waiting for it.
    async fn watch_the_clock<F: std::future::Future>(
        &self,
        m: &Message,
        work: F,
        deadline: Timestamp,
    ) -> F::Output {
        let margin = self.policy.out_of_time_margin.as_millis() as i64;
        let wait_ms = deadline.unix_millis() - margin - Timestamp::now().unix_millis();
        let alarm = tokio::time::sleep(Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0)));
        let mut work = std::pin::pin!(work);
        tokio::select! {
            biased; // the work first: a finished attempt needs no mark (and the order is replayable)
            out = &mut work => return out,
            () = alarm => {}
        }
        tracing::warn!(message_id = %m.message_id, "still running near the invocation's deadline: marking its lease out of time");
        for job in parse_jobs(&m.body).unwrap_or_default() {
            if let Err(e) = self
                .control
                .mark_out_of_time(self.stage, job.image_id, &m.holder())
                .await
            {
                tracing::warn!(error = %e, "could not mark the lease out of time; a timeout will count as a crash");
            }
        }
        work.await
    }

    /// Whether this redelivered message's previous attempt never ended (its lease, still its
    /// own from an earlier receive and run out, says so) for the first time: whether it crashed
    /// or ran out of time, it gets one more attempt with the invocation to itself, so an image
    /// that shared a process with another's crash, or met a slow moment, is not failed for it.
    async fn abandoned_before(&self, m: &Message) -> bool {
        if m.receive_count < 2 {
            return false;
        }
        let now = Timestamp::now();
        for job in parse_jobs(&m.body).unwrap_or_default() {
            match self.control.lease(self.stage, job.image_id).await {
                Ok(Some(lease))
                    if lease.holder == m.message_id
                        && lease.receive < m.receive_count
                        && lease.until < now
                        && lease.attempts < 2 =>
                {
                    return true
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not read the lease"),
            }
        }
        false
    }

    async fn handle_message(&self, m: &Message) -> Verdict {
        let jobs = match parse_jobs(&m.body) {
            Ok(jobs) => jobs,
            Err(e) => {
                // Not ours to drop silently: it goes to the DLQ after its receives, for a human.
                tracing::error!(error = %e, "unreadable message");
                self.back_off(m).await;
                return Verdict::Retry;
            }
        };
        if jobs.is_empty() {
            tracing::info!("no originals in this message (test event or other prefix); skipped");
            return Verdict::Ack;
        }

        let probing = match self.admit().await {
            Ok(Admission::Proceed) => false,
            Ok(Admission::Probe) => {
                tracing::info!("circuit half-open: this message is the probe");
                true
            }
            Ok(Admission::DeferUntil(until)) => {
                if !self.deferred_too_long(m) {
                    return self.defer(m, until).await;
                }
                tracing::warn!(
                    deferred_since = ?m.deferred_since,
                    "circuit open, but this message has been deferred for the longest allowed: working on it (it fails on its last receive if the outage goes on)"
                );
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "circuit breaker unreadable; retrying later");
                if is_last_receive(m.receive_count)
                    && !self.deferred_too_long(m)
                    && self.defer_after_cooldown(m).await == Verdict::Ack
                {
                    // The control table's outage outlasted the receives: wait like a deferral.
                    return Verdict::Ack;
                }
                if is_last_receive(m.receive_count) {
                    // Give up on the row now rather than leave it `processing` behind the DLQ.
                    for job in &jobs {
                        let message = format!(
                            "gave up after {MAX_RECEIVES} attempts: the circuit breaker could not be read ({e})"
                        );
                        if let Err(e) = self
                            .finish_failed(job, ErrorKind::Transient, &message)
                            .await
                        {
                            tracing::error!(error = %e, "could not mark the image failed");
                        }
                    }
                    self.dead_letter_now(m).await;
                } else {
                    self.back_off(m).await;
                }
                return Verdict::Retry;
            }
        };

        let mut verdict = Verdict::Ack;
        // Jobs whose last receive failed: (job, reason, whether a dependency's outage caused it).
        let mut gave_up: Vec<(&Job, String, bool)> = Vec::new();
        for job in &jobs {
            tracing::Span::current().record("image_id", tracing::field::display(job.image_id));
            match self.process(job, m).await {
                Ok(Ran::Busy { until }) => {
                    // A duplicate delivery of this very message while its attempt runs: the live
                    // attempt decides. Come back when its lease runs out (it will have released
                    // it, or died); on the last receive, leave the message to the live attempt
                    // (the stale-row sweep ends a row that attempt could not).
                    if !is_last_receive(m.receive_count) {
                        self.hide_until(m, until).await;
                        verdict = Verdict::Retry;
                    }
                }
                Ok(ran) => {
                    // Only a stage that really ran tells the probe the dependencies are back.
                    if probing && ran == Ran::Yes {
                        self.breaker_success().await;
                    }
                }
                Err(JobFailure::Permanent { kind, message, .. }) => {
                    // The file was bad, the dependencies answered: a probe that gets here passed.
                    if probing {
                        self.breaker_success().await;
                    }
                    crate::metrics::failure(self.stage, kind);
                    tracing::warn!(error_kind = kind.as_str(), reason = %message, "permanent failure; not retried");
                    if let Err(e) = self.finish_failed(job, kind, &message).await {
                        tracing::error!(error = %e, "could not record the failure; retrying");
                        self.back_off(m).await;
                        verdict = Verdict::Retry;
                    }
                }
                Err(failure) => {
                    verdict = Verdict::Retry;
                    let outage = failure.counts_against_breaker();
                    if outage {
                        self.breaker_failure().await;
                    }
                    crate::metrics::failure(self.stage, ErrorKind::Transient);
                    let reason = failure.to_string();
                    if is_last_receive(m.receive_count) {
                        gave_up.push((job, reason, outage));
                    } else {
                        tracing::warn!(reason = %reason, "transient failure; backing off");
                        self.note_transient(job, &reason).await;
                        self.back_off(m).await;
                    }
                }
            }
        }
        if gave_up.is_empty() {
            return verdict;
        }
        // An outage outlasted the receives (the first images of an outage spend theirs before
        // the circuit opens): the message waits like a deferred one, as a fresh copy after the
        // breaker's cool-down, within the same cap on its total deferral. Anything else (a
        // refusal, a lost race every time, the cap reached) fails the image on to the DLQ.
        if gave_up.iter().all(|(_, _, outage)| *outage)
            && !self.deferred_too_long(m)
            && self.defer_after_cooldown(m).await == Verdict::Ack
        {
            for (job, reason, _) in &gave_up {
                self.note_transient(job, reason).await;
            }
            return Verdict::Ack;
        }
        for (job, reason, _) in &gave_up {
            let message = format!("gave up after {MAX_RECEIVES} attempts: {reason}");
            tracing::error!(reason = %reason, "last attempt failed; marking failed before the DLQ");
            if let Err(e) = self
                .finish_failed(job, ErrorKind::Transient, &message)
                .await
            {
                tracing::error!(error = %e, "could not mark the image failed; the sweeper will");
            }
        }
        self.dead_letter_now(m).await;
        Verdict::Retry
    }

    /// A message kept after its last receive goes to the DLQ on its next receive: make it
    /// visible now rather than after the queue's whole visibility timeout (180 s), so the DLQ
    /// (and its alarm) holds it within seconds. Its row is already marked failed.
    async fn dead_letter_now(&self, m: &Message) {
        if let Err(e) = self
            .queue
            .delay(self.stage, &m.receipt_handle, Duration::ZERO)
            .await
        {
            tracing::warn!(error = %e, "could not hurry the message to the DLQ; it goes after the visibility timeout");
        }
    }

    /// Hides the message until `until` (a live attempt's lease), plus a little jitter.
    async fn hide_until(&self, m: &Message, until: Timestamp) {
        let wait_ms = until.unix_millis() - Timestamp::now().unix_millis();
        let jitter_ms = (crate::retry::jitter() * 2000.0) as i64;
        let delay =
            Duration::from_millis(u64::try_from(wait_ms + jitter_ms).unwrap_or(0).max(1000));
        if let Err(e) = self.queue.delay(self.stage, &m.receipt_handle, delay).await {
            tracing::warn!(error = %e, "could not hide the duplicate; it comes back after the visibility timeout");
        }
    }

    /// Hides the message for the backoff delay of its receive count.
    async fn back_off(&self, m: &Message) {
        let delay = self.policy.backoff.random_delay(m.receive_count);
        if let Err(e) = self.queue.delay(self.stage, &m.receipt_handle, delay).await {
            // The queue's own visibility timeout then applies: slower, but nothing is lost.
            tracing::warn!(error = %e, "could not set the backoff visibility");
        }
    }

    /// Re-sends a message not started before the deadline as a fresh copy, visible at once.
    async fn requeue_now(&self, m: &Message) -> Verdict {
        match self
            .queue
            .requeue(self.stage, &m.body, Duration::ZERO, m.deferred_since)
            .await
        {
            Ok(()) => Verdict::Ack,
            Err(e) => {
                tracing::warn!(message_id = %m.message_id, error = %e, "could not re-send; keeping the message");
                Verdict::Retry
            }
        }
    }

    /// Whether the message's deferrals began longer ago than [`Policy::max_deferral`].
    fn deferred_too_long(&self, m: &Message) -> bool {
        m.deferred_since.is_some_and(|since| {
            Timestamp::now().unix_millis() - since.unix_millis()
                > self.policy.max_deferral.as_millis() as i64
        })
    }

    /// Defers the message by the breaker's cool-down (see [`Self::defer`]).
    async fn defer_after_cooldown(&self, m: &Message) -> Verdict {
        let cooldown = i64::try_from(self.policy.breaker.cooldown.as_secs()).unwrap_or(60);
        self.defer(m, Timestamp::now().plus_secs(cooldown)).await
    }

    /// The circuit is open: re-send the message as a delayed copy (carrying when its deferrals
    /// began) and drop the original.
    async fn defer(&self, m: &Message, until: Timestamp) -> Verdict {
        let now = Timestamp::now();
        let since = m.deferred_since.unwrap_or(now);
        let wait_ms = until.unix_millis() - now.unix_millis();
        // Spread the herd over a few seconds after the cool-down.
        let jitter_ms = (crate::retry::jitter() * 5000.0) as i64;
        let delay =
            Duration::from_millis(u64::try_from(wait_ms + jitter_ms).unwrap_or(0).max(1000));
        match self
            .queue
            .requeue(self.stage, &m.body, delay, Some(since))
            .await
        {
            Ok(()) => {
                tracing::info!(
                    delay_secs = delay.as_secs(),
                    "circuit open; message deferred"
                );
                Verdict::Ack
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not defer; keeping the message");
                if is_last_receive(m.receive_count) {
                    tracing::error!("last receive and the deferral failed: the sweeper marks the row failed from the DLQ");
                }
                self.back_off(m).await;
                Verdict::Retry
            }
        }
    }
}

impl<S, R, Q, C> Processor<S, R, Q, C> {
    /// The ports (tests inspect them).
    pub fn ports(&self) -> (&S, &R, &Q, &C) {
        (&self.store, &self.images, &self.queue, &self.control)
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
