//! The job queues and the dead-letter queues in memory.

use super::*;

/// The job queues in memory: what was sent and what was delayed.
#[derive(Debug, Default, Clone)]
pub struct MemoryQueue {
    /// Messages sent, in order.
    pub sent: Arc<Mutex<Vec<RetryMessage>>>,
    /// Visibility changes: (stage, receipt handle, delay).
    pub delays: Arc<Mutex<Vec<(Stage, String, Duration)>>>,
    /// Deferred copies: (stage, body, delay).
    pub requeued: Arc<Mutex<Vec<(Stage, String, Duration)>>>,
    /// The `deferred_since` each copy carried, in the order of `requeued`.
    pub deferred_since: Arc<Mutex<Vec<Option<Timestamp>>>>,
}

impl MemoryQueue {
    /// Deferred copies so far.
    pub fn requeued(&self) -> Vec<(Stage, String, Duration)> {
        lock(&self.requeued).clone()
    }

    /// Messages sent so far.
    pub fn sent(&self) -> Vec<RetryMessage> {
        lock(&self.sent).clone()
    }

    /// Visibility changes so far.
    pub fn delays(&self) -> Vec<(Stage, String, Duration)> {
        lock(&self.delays).clone()
    }
}

impl JobQueue for MemoryQueue {
    async fn enqueue(&self, message: &RetryMessage) -> Result<(), QueueError> {
        lock(&self.sent).push(message.clone());
        Ok(())
    }

    async fn delay(&self, receipt: Receipt<'_>, delay: Duration) -> Result<(), QueueError> {
        lock(&self.delays).push((receipt.stage, receipt.handle.to_owned(), delay));
        Ok(())
    }

    async fn requeue(&self, copy: &Requeue<'_>) -> Result<(), QueueError> {
        lock(&self.requeued).push((copy.stage, copy.body.to_owned(), copy.delay));
        lock(&self.deferred_since).push(copy.deferred_since);
        Ok(())
    }
}

/// A dead letter in memory: (message id, body, hidden until).
type Letter = (String, String, Option<tokio::time::Instant>);

/// The dead-letter queues in memory. Time is tokio's, so a paused test clock drives the hiding
/// and the long polls.
#[derive(Debug, Default, Clone)]
pub struct MemoryDeadLetters {
    /// Per stage, oldest first.
    letters: Arc<Mutex<BTreeMap<Stage, Vec<Letter>>>>,
    /// Depths the processing queues report (test setup).
    pub queue_depths: Arc<Mutex<BTreeMap<Stage, QueueDepth>>>,
    /// When set, a receive that does not wait (an SQS short poll, which samples some of the
    /// queue's servers) answers empty even when letters are visible, as SQS may.
    pub short_polls_miss: Arc<Mutex<bool>>,
    /// Receives so far: (stage, wait asked for).
    pub receives: Arc<Mutex<Vec<(Stage, Duration)>>>,
}

impl MemoryDeadLetters {
    /// Puts a message into a stage's DLQ (as SQS would after the last receive).
    pub fn push(&self, stage: Stage, body: &str) {
        let id = format!("dlq-{}", ulid::Ulid::new());
        lock(&self.letters)
            .entry(stage)
            .or_default()
            .push((id, body.to_owned(), None));
    }

    /// The bodies in a stage's DLQ, hidden or not.
    pub fn bodies(&self, stage: Stage) -> Vec<String> {
        lock(&self.letters)
            .get(&stage)
            .map(|v| v.iter().map(|(_, b, _)| b.clone()).collect())
            .unwrap_or_default()
    }

    /// How many of a stage's letters are hidden now (received and not yet visible again).
    pub fn hidden(&self, stage: Stage) -> usize {
        let now = tokio::time::Instant::now();
        lock(&self.letters).get(&stage).map_or(0, |v| {
            v.iter().filter(|l| l.2.is_some_and(|u| u > now)).count()
        })
    }

    /// Hides every letter of a stage for `for_` (another reader holding them, test setup).
    pub fn hide_all(&self, stage: Stage, for_: Duration) {
        let until = tokio::time::Instant::now() + for_;
        for letter in lock(&self.letters).entry(stage).or_default().iter_mut() {
            letter.2 = Some(until);
        }
    }

    /// Takes up to `max` visible letters, hiding them until `until`; or, when none is visible,
    /// when the next hidden one becomes visible again.
    fn take(
        &self,
        stage: Stage,
        max: u32,
        until: tokio::time::Instant,
    ) -> (Vec<DeadLetter>, Option<tokio::time::Instant>) {
        let now = tokio::time::Instant::now();
        let mut all = lock(&self.letters);
        let mut out = Vec::new();
        let mut next_visible: Option<tokio::time::Instant> = None;
        for (id, body, hidden) in all.entry(stage).or_default().iter_mut() {
            if let Some(u) = hidden.filter(|u| *u > now) {
                next_visible = Some(next_visible.map_or(u, |n| n.min(u)));
                continue;
            }
            if out.len() >= max as usize {
                break;
            }
            *hidden = Some(until);
            out.push(DeadLetter {
                message_id: id.clone(),
                receipt_handle: id.clone(),
                body: body.clone(),
            });
        }
        (out, next_visible)
    }
}

impl QueueAdmin for MemoryDeadLetters {
    async fn depth(&self, stage: Stage, dead_letters: bool) -> Result<QueueDepth, QueueError> {
        if !dead_letters {
            return Ok(lock(&self.queue_depths)
                .get(&stage)
                .copied()
                .unwrap_or_default());
        }
        let all = lock(&self.letters).get(&stage).map_or(0, Vec::len) as u64;
        let hidden = self.hidden(stage) as u64;
        Ok(QueueDepth {
            visible: all - hidden,
            in_flight: hidden,
            delayed: 0,
        })
    }

    async fn receive_dead_letters(
        &self,
        request: &DeadLetterReceive,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        lock(&self.receives).push((request.stage, request.wait));
        // SQS counts the wait in whole seconds, at most 20.
        let wait = Duration::from_secs(request.wait.as_secs().min(20));
        if wait.is_zero() && *lock(&self.short_polls_miss) {
            return Ok(Vec::new());
        }
        let give_up = tokio::time::Instant::now() + wait;
        loop {
            let now = tokio::time::Instant::now();
            let (out, next_visible) = self.take(request.stage, request.max, now + request.hide_for);
            if !out.is_empty() || now >= give_up {
                return Ok(out);
            }
            // Until a hidden letter comes back, or a little later (a letter pushed meanwhile).
            let tick = now + Duration::from_millis(100);
            let wake = next_visible.map_or(tick, |v| v.min(tick)).min(give_up);
            tokio::time::sleep_until(wake).await;
        }
    }

    async fn delete_dead_letter(&self, receipt: Receipt<'_>) -> Result<(), QueueError> {
        lock(&self.letters)
            .entry(receipt.stage)
            .or_default()
            .retain(|(id, _, _)| id != receipt.handle);
        Ok(())
    }

    async fn release_dead_letter(&self, receipt: Receipt<'_>) -> Result<(), QueueError> {
        let at = tokio::time::Instant::now();
        for (id, _, until) in lock(&self.letters)
            .entry(receipt.stage)
            .or_default()
            .iter_mut()
        {
            if id == receipt.handle {
                *until = Some(at);
            }
        }
        Ok(())
    }
}
