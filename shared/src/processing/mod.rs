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
//! ([`RowWriter`]), and a completed stage is never redone. A crash between storing derivatives and
//! completing the row leaves the stage `processing` and its lease held; the redelivered message
//! then fails it as crashed, and the owner's retry redoes it.
//!
//! Layout: this module is the batch loop (order, deadline, panics, a redelivery that must run
//! alone); `outcome` is what becomes of each message (one entry, `handle_message`). Both work
//! through four collaborators, each a type of its own: `Gate` (the circuit breaker and the leases, over
//! the control table), [`RowWriter`] (conditional row writes, retried on conflict), `StageWork`
//! (one job: fetch, check, render, store, complete, over the bucket; `original` reads, adopts
//! and pins the original) and `Redelivery` (when a kept message comes back, over the queue).
//! [`JobFailure`] classifies what went wrong; [`Message`] and [`Policy`] are the inputs.

mod failure;
mod gate;
mod message;
mod original;
mod outcome;
mod policy;
mod redelivery;
mod rows;
mod stage;

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt as _;
use tracing::Instrument as _;

use crate::domain::{Stage, Timestamp};
use crate::engine::{Limits, Spec};
use crate::events::parse_jobs;
use crate::ports::{ControlStore, ImageRepository, JobQueue, ObjectStore};

pub use failure::{Dependency, JobFailure};
pub use message::Message;
pub use policy::Policy;
pub use rows::{RowError, RowWriter};
pub use stage::{CRASHED, TIMED_OUT};

use gate::Gate;
use redelivery::{Redelivery, Verdict};
use stage::StageWork;

/// The pipeline for one stage, over its ports.
#[derive(Debug)]
pub struct Processor<S, R, Q, C> {
    stage: Stage,
    policy: Policy,
    images: R,
    work: StageWork<S>,
    gate: Gate<C>,
    queue: Redelivery<Q>,
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
            images: ports.images,
            work: StageWork::new(stage, specs, limits, ports.store),
            gate: Gate::new(stage, ports.control, &policy),
            queue: Redelivery::new(stage, ports.queue, &policy),
            policy,
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
            let rest = &order[i + 1..];
            if let Some(left_ms) = self.too_late_to_start(deadline) {
                span.in_scope(|| {
                    tracing::warn!(
                        left_ms,
                        not_started = rest.len() + 1,
                        "invocation deadline near: re-sending the messages not started"
                    );
                });
                self.resend(&order[i..], &mut keep).await;
                break;
            }
            let alone = !rest.is_empty() && self.abandoned_before(m).await;
            if alone {
                span.in_scope(|| {
                    tracing::warn!(
                        others = rest.len(),
                        "its previous attempt never ended (a crash or a timeout): re-sending the rest of the batch so it runs alone"
                    );
                });
                self.resend(rest, &mut keep).await;
            }
            if self.handle_guarded(m, span, deadline).await == Verdict::Retry {
                keep.push(m.message_id.clone());
            }
            if alone {
                break;
            }
        }
        keep
    }

    /// The time left before `deadline`, in milliseconds, when it is less than
    /// [`Policy::deadline_reserve`]: too little to start another message.
    fn too_late_to_start(&self, deadline: Option<Timestamp>) -> Option<i64> {
        let left = deadline?.unix_millis() - Timestamp::now().unix_millis();
        (left < self.policy.deadline_reserve.as_millis() as i64).then_some(left)
    }

    /// Re-sends messages not started as fresh copies; keeps those that could not be re-sent.
    async fn resend(&self, messages: &[&Message], keep: &mut Vec<String>) {
        for m in messages {
            if self.queue.resend_now(m).await == Verdict::Retry {
                keep.push(m.message_id.clone());
            }
        }
    }

    /// Handles one message in its span: a panic is that message's failure only, and the clock
    /// is watched when the invocation has a deadline.
    async fn handle_guarded(
        &self,
        m: &Message,
        span: tracing::Span,
        deadline: Option<Timestamp>,
    ) -> Verdict {
        // Boxed: keeps the future's type shallow enough for the compiler's layout queries.
        let work = AssertUnwindSafe(Box::pin(self.handle_message(m)).instrument(span.clone()))
            .catch_unwind();
        let outcome = match deadline {
            Some(deadline) => self.watch_the_clock(m, work, deadline).await,
            None => work.await,
        };
        outcome.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            span.in_scope(
                || tracing::error!(panic = %what, "processing panicked; the message will be retried"),
            );
            Verdict::Retry
        })
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
            self.gate.mark_out_of_time(job.image_id, &m.holder()).await;
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
            if self
                .gate
                .abandoned_once(job.image_id, &m.holder(), now)
                .await
            {
                return true;
            }
        }
        false
    }
}
