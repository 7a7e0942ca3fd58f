//! [`Redelivery`]: when a kept message comes back, over the stage's queue. A transient failure
//! hides the message for its backoff; a duplicate of a running attempt until that attempt's
//! lease runs out; a failed last receive not at all (so SQS dead-letters it within seconds). A
//! message not started is re-sent as a fresh copy, and an open circuit defers one as a delayed
//! copy that carries when its deferrals began.

use std::time::Duration;

use crate::domain::{Stage, Timestamp};
use crate::ports::{JobQueue, Receipt, Requeue};
use crate::retry::{is_last_receive, Backoff};

use super::{Message, Policy};

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Done with it: SQS deletes it.
    Ack,
    /// Keep it: SQS redelivers it after its (changed) visibility timeout.
    Retry,
}

/// The stage's queue, and how long kept messages stay hidden.
#[derive(Debug)]
pub struct Redelivery<Q> {
    stage: Stage,
    queue: Q,
    backoff: Backoff,
    cooldown: Duration,
    max_deferral: Duration,
}

/// `wait_ms` plus up to `max_jitter_ms` of jitter, at least a second.
fn jittered(wait_ms: i64, max_jitter_ms: f64) -> Duration {
    let jitter_ms = (crate::retry::jitter() * max_jitter_ms) as i64;
    Duration::from_millis(u64::try_from(wait_ms + jitter_ms).unwrap_or(0).max(1000))
}

impl<Q: JobQueue> Redelivery<Q> {
    /// The queue of `stage`, with the policy's backoff, breaker cool-down and deferral cap.
    pub fn new(stage: Stage, queue: Q, policy: &Policy) -> Self {
        Redelivery {
            stage,
            queue,
            backoff: policy.backoff,
            cooldown: policy.breaker.cooldown,
            max_deferral: policy.max_deferral,
        }
    }

    /// The message as received from this stage's queue.
    fn receipt<'a>(&self, m: &'a Message) -> Receipt<'a> {
        Receipt {
            stage: self.stage,
            handle: &m.receipt_handle,
        }
    }

    /// Hides the message for the backoff delay of its receive count.
    pub async fn back_off(&self, m: &Message) {
        let delay = self.backoff.random_delay(m.receive_count);
        if let Err(e) = self.queue.delay(self.receipt(m), delay).await {
            // The queue's own visibility timeout then applies: slower, but nothing is lost.
            tracing::warn!(error = %e, "could not set the backoff visibility");
        }
    }

    /// Hides the message until `until` (a live attempt's lease), plus a little jitter.
    pub async fn hide_until(&self, m: &Message, until: Timestamp) {
        let delay = jittered(until.unix_millis() - Timestamp::now().unix_millis(), 2000.0);
        if let Err(e) = self.queue.delay(self.receipt(m), delay).await {
            tracing::warn!(error = %e, "could not hide the duplicate; it comes back after the visibility timeout");
        }
    }

    /// A message kept after its last receive goes to the DLQ on its next receive: make it
    /// visible now rather than after the queue's whole visibility timeout (180 s), so the DLQ
    /// (and its alarm) holds it within seconds. Its row is already marked failed.
    pub async fn dead_letter_now(&self, m: &Message) {
        if let Err(e) = self.queue.delay(self.receipt(m), Duration::ZERO).await {
            tracing::warn!(error = %e, "could not hurry the message to the DLQ; it goes after the visibility timeout");
        }
    }

    /// Re-sends a message not started as a fresh copy, visible at once (no receive used up).
    pub async fn resend_now(&self, m: &Message) -> Verdict {
        match self
            .queue
            .requeue(&Requeue {
                stage: self.stage,
                body: &m.body,
                delay: Duration::ZERO,
                deferred_since: m.deferred_since,
            })
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
    pub fn deferred_too_long(&self, m: &Message) -> bool {
        m.deferred_since.is_some_and(|since| {
            Timestamp::now().unix_millis() - since.unix_millis()
                > self.max_deferral.as_millis() as i64
        })
    }

    /// Defers the message by the breaker's cool-down (see [`Self::defer`]).
    pub async fn defer_after_cooldown(&self, m: &Message) -> Verdict {
        let cooldown = i64::try_from(self.cooldown.as_secs()).unwrap_or(60);
        self.defer(m, Timestamp::now().plus_secs(cooldown)).await
    }

    /// The circuit is open: re-send the message as a delayed copy (carrying when its deferrals
    /// began) and drop the original. When the copy cannot be sent, the message is kept and backs
    /// off.
    pub async fn defer(&self, m: &Message, until: Timestamp) -> Verdict {
        let now = Timestamp::now();
        let since = m.deferred_since.unwrap_or(now);
        // Spread the herd over a few seconds after the cool-down.
        let delay = jittered(until.unix_millis() - now.unix_millis(), 5000.0);
        match self
            .queue
            .requeue(&Requeue {
                stage: self.stage,
                body: &m.body,
                delay,
                deferred_since: Some(since),
            })
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

#[cfg(all(test, feature = "testing"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::MemoryQueue;

    fn redelivery() -> Redelivery<MemoryQueue> {
        Redelivery::new(Stage::Variant, MemoryQueue::default(), &Policy::default())
    }

    fn message(receive_count: u32, deferred_since: Option<Timestamp>) -> Message {
        Message {
            message_id: "m".into(),
            receipt_handle: format!("rh-{receive_count}"),
            body: "{}".into(),
            receive_count,
            deferred_since,
        }
    }

    #[tokio::test]
    async fn a_deferred_copy_carries_when_its_deferrals_began_and_waits_at_least_the_wait() {
        let r = redelivery();
        let began = Timestamp::now().plus_secs(-60);
        let until = Timestamp::now().plus_secs(30);
        assert_eq!(r.defer(&message(1, Some(began)), until).await, Verdict::Ack);
        assert_eq!(r.defer(&message(1, None), until).await, Verdict::Ack);
        let copies = r.queue.requeued();
        assert!(copies
            .iter()
            .all(|(stage, body, delay)| *stage == Stage::Variant
                && body == "{}"
                && *delay >= Duration::from_secs(29)));
        let since = r.queue.deferred_since.lock().unwrap().clone();
        assert_eq!(since[0], Some(began));
        assert!(
            since[1].is_some_and(|s| s > began),
            "a fresh chain begins now"
        );
        assert!(
            r.queue.delays().is_empty(),
            "the originals are dropped, not kept"
        );
    }

    #[tokio::test]
    async fn a_deferral_chain_is_too_long_past_the_cap_counted_from_its_first_deferral() {
        let r = redelivery();
        assert!(!r.deferred_too_long(&message(1, None)));
        assert!(!r.deferred_too_long(&message(1, Some(Timestamp::now().plus_secs(-3600)))));
        assert!(r.deferred_too_long(&message(1, Some(Timestamp::now().plus_secs(-7 * 3600)))));
    }

    #[tokio::test]
    async fn a_failed_last_receive_is_visible_at_once_and_a_resend_is_a_fresh_copy() {
        let r = redelivery();
        r.dead_letter_now(&message(3, None)).await;
        assert_eq!(
            r.queue.delays(),
            vec![(Stage::Variant, "rh-3".to_owned(), Duration::ZERO)]
        );
        assert_eq!(r.resend_now(&message(2, None)).await, Verdict::Ack);
        assert_eq!(
            r.queue.requeued(),
            vec![(Stage::Variant, "{}".to_owned(), Duration::ZERO)]
        );
    }
}
