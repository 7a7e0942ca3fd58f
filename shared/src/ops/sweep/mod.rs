//! The sweep that leaves no row behind (the `sweeper` function, on a schedule).
//!
//! 1. **Dead letters.** A message lands in a processing DLQ after its last receive. The
//!    processors mark the row failed on that receive when they can; when they could not (the
//!    process died, the invocation timed out, the row write failed), the row would stay
//!    `processing` or `pending` for ever, and retry needs `failed`. The sweep drains both DLQs:
//!    it receives every letter with long polls (a short poll samples some of SQS's servers and
//!    may answer empty with letters there), marks each letter's image stage failed with what the
//!    message went through, and keeps the letters it has seen hidden until both DLQs are done, so
//!    no receive sees a letter twice and stops early; only an empty long poll (or the time budget)
//!    ends a DLQ. Then every letter is made visible again at once: letters **stay** in the DLQs
//!    for operators, alarms and the admin redrive, except a letter whose stage completed after
//!    all (an owner's retry finished it, or its process died after completing it but before the
//!    message was deleted): that one is deleted, so the DLQs hold only what failed. A stage is only failed when its row has not
//!    changed for [`SweepPolicy::stale_after`], so an image the owner retried meanwhile (a fresh
//!    message in flight) is left alone.
//! 2. **Uploads that never came.** A row whose presigned upload never came stays `pending` /
//!    `awaiting_upload`. After the presigned lifetime plus [`SweepPolicy::upload_grace`] no
//!    upload can start any more, but only the processor's first attempt records that the original
//!    arrived, and an open circuit breaker or a backlog can hold that attempt back for longer.
//!    So the sweep asks the bucket first (a HEAD of the original): an original that is there
//!    makes the row `stored` (its event will process it; if the event is lost, step 3 does), and
//!    only a row whose original is absent ends `failed`, `error_kind` `rejected`, `upload_state`
//!    `expired` ([`ImageRecord::expire_upload`]). TTL is no substitute: it is not enforced
//!    locally, and deleting the row would hide the failure from its owner.
//! 3. **Rows that never end.** A row `pending` (its original stored) or `processing` whose message
//!    is gone (the EventBridge target's DLQ, a retry whose send failed and whose restore failed
//!    too, queue retention) would wait for ever. A row not written for
//!    [`SweepPolicy::stuck_after`] is re-enqueued: one message per unfinished stage, and the
//!    re-enqueue is counted on the row (`sweep_requeues`), which also starts the wait again.
//!    Re-enqueueing is safe: a processor drops a message for a stage that has ended or whose
//!    lease another message holds. A row still stuck after
//!    [`SweepPolicy::max_sweep_requeues`] re-enqueues fails with a readable reason ("processing
//!    never finished …", `transient`, so the owner's retry is offered) instead of being
//!    re-enqueued for ever.
//!
//! A sweep works within the time budget it is given (the invocation's remaining time less a
//! reserve) and reports whether it finished; the next one continues.

mod dead_letters;
mod stuck;
mod uploads;

use std::time::Duration;

use tokio::time::Instant;

use crate::domain::Timestamp;
use crate::ports::{
    ImageRepository, JobQueue, ObjectStore, QueueAdmin, QueueError, RepoError, StatusIndex,
    StoreError,
};
use crate::processing::{RowError, RowWriter};

/// SQS counts a receive's wait in whole seconds: a wait under one is a short poll.
const MIN_LONG_POLL: Duration = Duration::from_secs(1);
/// SQS's longest receive wait.
const MAX_LONG_POLL: Duration = Duration::from_secs(20);
/// Rows read per index page.
const ROW_PAGE: u32 = 100;
/// Receives of only letters already seen (SQS may deliver a held message again, rarely) before a
/// DLQ's drain gives up for this sweep.
const REPEATS_TOLERATED: u32 = 3;

/// Tunables of the sweep.
#[derive(Debug, Clone)]
pub struct SweepPolicy {
    /// A row unchanged for this long, whose message is in a DLQ, is given up on (longer than a
    /// retry in progress goes without a row write: the 300 s backoff cap plus a visibility).
    pub stale_after: Duration,
    /// The presigned upload lifetime (`PRESIGN_EXPIRES_SECS`).
    pub presign_lifetime: Duration,
    /// Added to the lifetime before an upload counts as never coming (clock skew, a PUT
    /// started at the last second).
    pub upload_grace: Duration,
    /// How long one DLQ receive waits for a letter (a long poll; SQS allows 1-20 s). Any wait
    /// makes SQS look at all of its servers, which is what draining needs; a longer one only
    /// catches letters that arrive during the sweep, which the next sweep finds anyway.
    pub dead_letter_wait: Duration,
    /// Added to the remaining budget when hiding the letters seen: they stay hidden until the
    /// sweep releases them, or shortly after an invocation that died holding them.
    pub hold_margin: Duration,
    /// A `pending` (stored) or `processing` row not written for this long has lost its message
    /// and is re-enqueued. Longer than anything legitimate goes without a row write: a transient
    /// failure is noted on the row at every receive, an attempt writes when it starts and ends,
    /// and a receive waits at most the 300 s backoff cap plus the 180 s visibility (8 minutes);
    /// a deferral by an open circuit (a delayed copy of at most 15 minutes, repeated while it is
    /// open) or a queue backlog writes nothing, and an hour covers a long outage or backlog
    /// before the first re-enqueue, which only adds a message the processors drop as a duplicate.
    pub stuck_after: Duration,
    /// A stuck row already re-enqueued this many times (each after [`Self::stuck_after`]
    /// without a write) fails as "processing never finished". With the defaults: after four
    /// hours without any progress.
    pub max_sweep_requeues: u32,
    /// Attempts at a conditional row write.
    pub write_attempts: u32,
}

impl Default for SweepPolicy {
    fn default() -> Self {
        SweepPolicy {
            stale_after: Duration::from_secs(15 * 60),
            presign_lifetime: Duration::from_secs(15 * 60),
            upload_grace: Duration::from_secs(5 * 60),
            dead_letter_wait: Duration::from_secs(5),
            hold_margin: Duration::from_secs(30),
            stuck_after: Duration::from_secs(60 * 60),
            max_sweep_requeues: 3,
            write_attempts: 8,
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// DLQ messages looked at (left in their queue unless their work was done).
    pub dead_letters_seen: u32,
    /// DLQ messages deleted because their image's stage completed after all.
    pub done_letters_deleted: u32,
    /// Image stages failed because their message is in a DLQ.
    pub stages_failed: u32,
    /// Rows whose upload never came, now `failed` / `expired`.
    pub uploads_expired: u32,
    /// Rows still `awaiting_upload` past the link's lifetime whose original is in the bucket:
    /// now `stored`, not expired.
    pub uploads_found: u32,
    /// Rows that made no progress for [`SweepPolicy::stuck_after`]: their unfinished stages
    /// were re-enqueued.
    pub stuck_requeued: u32,
    /// Rows still stuck after [`SweepPolicy::max_sweep_requeues`] re-enqueues: now `failed`.
    pub stuck_failed: u32,
    /// Whether every step ran to its end within the budget (otherwise the next sweep goes on).
    pub finished: bool,
}

/// Why a sweep stopped early (what it did so far is kept; the next sweep continues).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A DLQ could not be read, or a message could not be sent.
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    /// The images table failed.
    #[error("images table: {0}")]
    Table(#[from] RepoError),
    /// A row could not be written.
    #[error("row update: {0}")]
    Row(#[from] RowError),
    /// The bucket could not say whether an original exists.
    #[error("object storage: {0}")]
    Store(#[from] StoreError),
}

/// The ports a sweep uses, borrowed.
#[derive(Debug)]
pub struct SweepPorts<'a, R, A, S, Q> {
    /// The images table and its `by_status_v2` index.
    pub images: &'a R,
    /// The processing stages' DLQs.
    pub dead_letters: &'a A,
    /// The bucket (HEAD of originals only).
    pub store: &'a S,
    /// The processing queues (to re-enqueue stuck rows).
    pub queue: &'a Q,
}

/// The sweep over its ports.
#[derive(Debug)]
pub struct Sweeper<'a, R, A, S, Q> {
    ports: SweepPorts<'a, R, A, S, Q>,
    policy: SweepPolicy,
}

/// Seconds as the signed offset `Timestamp::plus_secs` takes.
fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl<'a, R: ImageRepository, A, S, Q> Sweeper<'a, R, A, S, Q> {
    /// The images table's row writer, with the policy's attempts.
    fn rows(&self) -> RowWriter<'a, R> {
        RowWriter::new(self.ports.images, self.policy.write_attempts)
    }
}

impl<'a, R, A, S, Q> Sweeper<'a, R, A, S, Q>
where
    R: ImageRepository + StatusIndex,
    A: QueueAdmin,
    S: ObjectStore,
    Q: JobQueue,
{
    /// A sweep over the images table, the DLQs, the bucket and the processing queues.
    pub fn new(ports: SweepPorts<'a, R, A, S, Q>, policy: SweepPolicy) -> Self {
        Sweeper { ports, policy }
    }

    /// One sweep at `now`, working for at most `budget`: both DLQs, then the uploads that never
    /// came, then the stuck rows.
    pub async fn run(&self, now: Timestamp, budget: Duration) -> Result<SweepReport, SweepError> {
        let until = Instant::now() + budget;
        let mut report = SweepReport::default();
        let mut held = Vec::new();
        let drained = self
            .drain_dead_letters(now, until, &mut held, &mut report)
            .await;
        self.release(&held).await;
        let mut finished = drained?;
        finished &= self.expire_uploads(now, until, &mut report).await?;
        finished &= self.requeue_stuck(now, until, &mut report).await?;
        report.finished = finished;
        tracing::info!(?report, "sweep done");
        Ok(report)
    }
}
