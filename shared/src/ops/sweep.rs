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

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::UploadState;
use crate::domain::{ErrorKind, ImageId, ImageRecord, RetryMessage, Stage, Status, Timestamp};
use crate::events::parse_jobs;
use crate::ports::{
    DeadLetterReceive, ImageRepository, JobQueue, ObjectStore, QueueAdmin, QueueError, Receipt,
    RepoError, StatusIndex, StoreError,
};
use crate::processing::{RowError, RowWriter};
use crate::retry::MAX_RECEIVES;

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

/// Whether a dead letter's job is done: its stage completed, and the letter is not the event of
/// a later write to the original (that one's version is for a processor to remove, on redrive).
fn letter_is_done(job: &crate::domain::Job, stage: Stage, row: &ImageRecord) -> bool {
    row.stage_status(stage) == Status::Completed && !row.is_later_write(job)
}

/// The failure reason of a stage whose message reached the DLQ.
fn dead_letter_reason(stage: Stage, row: &ImageRecord) -> String {
    let last = match (&row.processing_error, row.error_kind) {
        (Some(e), Some(ErrorKind::Transient)) => format!("; last error: {e}"),
        _ => String::new(),
    };
    format!(
        "gave up after {MAX_RECEIVES} attempts without finishing (the process crashed, timed out \
         or could not record the outcome{last}); the message is kept in the {stage} dead-letter \
         queue"
    )
}

/// The failure reason of a row that stayed stuck through the sweeper's re-enqueues.
fn never_finished_reason(policy: &SweepPolicy, row: &ImageRecord) -> String {
    let hours = policy.stuck_after.as_secs_f64() / 3600.0;
    format!(
        "processing never finished: no progress for {hours:.1} h after each of {} re-enqueues \
         (its processing message was lost or keeps being dropped); retry it",
        row.sweep_requeues
    )
}

/// Seconds as the signed offset `Timestamp::plus_secs` takes.
fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl<'a, R, A, S, Q> Sweeper<'a, R, A, S, Q>
where
    R: ImageRepository + StatusIndex,
    A: QueueAdmin,
    S: ObjectStore,
    Q: JobQueue,
{
    /// The images table's row writer, with the policy's attempts.
    fn rows(&self) -> RowWriter<'a, R> {
        RowWriter::new(self.ports.images, self.policy.write_attempts)
    }

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

    /// Both DLQs, every letter received once and kept hidden (in `held`); whether both ended
    /// with an empty long poll within the budget.
    async fn drain_dead_letters(
        &self,
        now: Timestamp,
        until: Instant,
        held: &mut Vec<(Stage, String)>,
        report: &mut SweepReport,
    ) -> Result<bool, SweepError> {
        let mut finished = true;
        for stage in Stage::ALL {
            // An unfinished DLQ (out of time: the next one stops at once too; letters another
            // reader holds) does not keep the next one from being drained.
            finished &= self
                .drain_dead_letter_queue(stage, now, until, held, report)
                .await?;
        }
        Ok(finished)
    }

    async fn drain_dead_letter_queue(
        &self,
        stage: Stage,
        now: Timestamp,
        until: Instant,
        held: &mut Vec<(Stage, String)>,
        report: &mut SweepReport,
    ) -> Result<bool, SweepError> {
        let stale_before = now.plus_secs(-secs(self.policy.stale_after));
        let mut seen = HashSet::new();
        let mut nothing_new = 0;
        loop {
            if nothing_new >= REPEATS_TOLERATED {
                // Letters come back while held (their hold ran out, or another reader released
                // them): this sweep cannot tell what it has not seen; the next one goes on.
                return Ok(false);
            }
            let left = until.saturating_duration_since(Instant::now());
            let wait = self
                .policy
                .dead_letter_wait
                .clamp(MIN_LONG_POLL, MAX_LONG_POLL)
                .min(left);
            if wait < MIN_LONG_POLL {
                // No time left for a long poll: an empty short poll would prove nothing.
                return Ok(false);
            }
            let letters = self
                .ports
                .dead_letters
                .receive_dead_letters(&DeadLetterReceive {
                    stage,
                    max: 10,
                    hide_for: left + self.policy.hold_margin,
                    wait,
                })
                .await?;
            if letters.is_empty() {
                // Letters another reader holds (a retry-all run) are not seen: not finished. The
                // depth only decides `finished`: a depth that cannot be read does not stop the
                // sweep (its later steps matter more), it only leaves the sweep unfinished.
                let mine = held.iter().filter(|(s, _)| *s == stage).count() as u64;
                return Ok(match self.ports.dead_letters.depth(stage, true).await {
                    Ok(depth) => depth.in_flight <= mine,
                    Err(e) => {
                        tracing::warn!(%stage, error = %e, "could not read the DLQ's depth; the sweep goes on, unfinished");
                        false
                    }
                });
            }
            if letters.iter().all(|l| seen.contains(&l.message_id)) {
                nothing_new += 1;
            }
            for letter in letters {
                if !seen.insert(letter.message_id.clone()) {
                    held.push((stage, letter.receipt_handle.clone()));
                    continue;
                }
                report.dead_letters_seen += 1;
                // Unreadable bodies stay for a human; nothing to mark.
                let jobs = parse_jobs(&letter.body).unwrap_or_default();
                let mut work_done = !jobs.is_empty();
                for job in jobs {
                    let failed = self
                        .rows()
                        .modify(job.image_id, |r| {
                            if r.stage_status(stage).is_terminal() || r.updated_at >= stale_before {
                                return Ok(false);
                            }
                            let reason = dead_letter_reason(stage, r);
                            r.fail(stage, ErrorKind::Transient, &reason, now)
                                .map(|()| true)
                        })
                        .await?;
                    if failed.as_ref().is_some_and(|r| {
                        r.stage_status(stage) == Status::Failed && r.updated_at == now
                    }) {
                        tracing::warn!(image_id = %job.image_id, %stage, "dead-lettered image marked failed");
                        report.stages_failed += 1;
                    }
                    work_done &= failed.is_some_and(|r| letter_is_done(&job, stage, &r));
                }
                if work_done {
                    // The letter's work was done after all (a retry completed it, or the
                    // process died after completing it, before its message was deleted): nothing
                    // for operators to redrive, and the DLQ keeps only what failed.
                    self.ports
                        .dead_letters
                        .delete_dead_letter(Receipt {
                            stage,
                            handle: &letter.receipt_handle,
                        })
                        .await?;
                    report.done_letters_deleted += 1;
                } else {
                    held.push((stage, letter.receipt_handle.clone()));
                }
            }
        }
    }

    /// Makes every held letter visible again at once (they stay in their DLQ). A letter whose
    /// release fails comes back by itself when its hold ends.
    async fn release(&self, held: &[(Stage, String)]) {
        for (stage, receipt_handle) in held {
            if let Err(e) = self
                .ports
                .dead_letters
                .release_dead_letter(Receipt {
                    stage: *stage,
                    handle: receipt_handle,
                })
                .await
            {
                tracing::warn!(%stage, error = %e, "could not release a dead letter; it comes back when its hold ends");
            }
        }
    }

    /// Rows still `awaiting_upload` past the link's lifetime and grace: `stored` when the bucket
    /// has the original, else expired. Whether it got through them within the budget.
    async fn expire_uploads(
        &self,
        now: Timestamp,
        until: Instant,
        report: &mut SweepReport,
    ) -> Result<bool, SweepError> {
        let window = self.policy.presign_lifetime + self.policy.upload_grace;
        let expired_before = now.plus_secs(-secs(window));
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .ports
                .images
                .page_by_status(Status::Pending, true, ROW_PAGE, cursor.as_deref())
                .await?;
            for row in &page.items {
                // Oldest pending first: past the horizon, nothing later has expired either
                // (a row's last change is never older than its status).
                if row.status_since() >= expired_before {
                    return Ok(true);
                }
                if row.upload_state != UploadState::AwaitingUpload
                    || row.updated_at >= expired_before
                {
                    continue;
                }
                if Instant::now() >= until {
                    return Ok(false);
                }
                self.settle_upload(row, now, expired_before, report).await?;
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(true),
            }
        }
    }

    async fn settle_upload(
        &self,
        row: &ImageRecord,
        now: Timestamp,
        expired_before: Timestamp,
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        let waiting = |r: &ImageRecord| {
            r.upload_state == UploadState::AwaitingUpload
                && r.processing_status == Status::Pending
                && r.updated_at < expired_before
        };
        if self.ports.store.head(&row.original_key).await?.is_some() {
            // It did arrive; its processing has not started yet (a backlog, an open circuit).
            let found = self
                .rows()
                .modify(row.image_id, |r| Ok(waiting(r) && r.upload_arrived(now)))
                .await?;
            if found.is_some_and(|r| r.upload_state == UploadState::Stored && r.updated_at == now) {
                tracing::info!(image_id = %row.image_id, "the upload link expired but the original is stored: the row says so, not expired");
                report.uploads_found += 1;
            }
            return Ok(());
        }
        let expired = self
            .rows()
            .modify(row.image_id, |r| {
                if !waiting(r) {
                    return Ok(false);
                }
                r.expire_upload(now).map(|()| true)
            })
            .await?;
        if expired.is_some_and(|r| r.upload_state == UploadState::Expired) {
            tracing::info!(image_id = %row.image_id, "upload never came; row expired");
            report.uploads_expired += 1;
        }
        Ok(())
    }

    /// `pending` (stored) and `processing` rows not written for [`SweepPolicy::stuck_after`],
    /// oldest first: re-enqueued, or failed after too many re-enqueues. Whether it got through
    /// them within the budget.
    async fn requeue_stuck(
        &self,
        now: Timestamp,
        until: Instant,
        report: &mut SweepReport,
    ) -> Result<bool, SweepError> {
        let stuck_before = now.plus_secs(-secs(self.policy.stuck_after));
        for status in [Status::Pending, Status::Processing] {
            let mut cursor: Option<String> = None;
            'pages: loop {
                let page = self
                    .ports
                    .images
                    .page_by_status(status, true, ROW_PAGE, cursor.as_deref())
                    .await?;
                for row in &page.items {
                    // Oldest in its status first: past the horizon, no later row is stuck.
                    if row.status_since() >= stuck_before {
                        break 'pages;
                    }
                    if row.updated_at >= stuck_before {
                        // In this status for long, but it moved recently.
                        continue;
                    }
                    if row.upload_state == UploadState::AwaitingUpload {
                        // Nothing uploaded: the expiry's business.
                        continue;
                    }
                    if Instant::now() >= until {
                        return Ok(false);
                    }
                    self.unstick(row.image_id, now, stuck_before, report)
                        .await?;
                }
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        Ok(true)
    }

    async fn unstick(
        &self,
        id: ImageId,
        now: Timestamp,
        stuck_before: Timestamp,
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        let policy = &self.policy;
        let written = self
            .rows()
            .modify(id, |r| {
                if r.processing_status.is_terminal()
                    || r.updated_at >= stuck_before
                    || r.upload_state == UploadState::AwaitingUpload
                {
                    // It moved on (or was retried) since the page was read.
                    return Ok(false);
                }
                if r.sweep_requeues >= policy.max_sweep_requeues {
                    let reason = never_finished_reason(policy, r);
                    for stage in Stage::ALL {
                        if !r.stage_status(stage).is_terminal() {
                            r.fail(stage, ErrorKind::Transient, &reason, now)?;
                        }
                    }
                } else {
                    r.note_sweep_requeue(now);
                }
                Ok(true)
            })
            .await?;
        let Some(row) = written.filter(|r| r.updated_at == now) else {
            return Ok(());
        };
        if row.processing_status == Status::Failed {
            tracing::warn!(image_id = %id, requeues = row.sweep_requeues, "stuck image failed: processing never finished");
            report.stuck_failed += 1;
            return Ok(());
        }
        // Counted first, sent second: a send that fails costs one of the row's re-enqueues, so
        // a row is never re-enqueued without bound.
        let unfinished: Vec<Stage> = Stage::ALL
            .into_iter()
            .filter(|s| !row.stage_status(*s).is_terminal())
            .collect();
        for stage in &unfinished {
            let message = RetryMessage::new(row.image_id, row.original_key.clone(), *stage);
            self.ports.queue.enqueue(&message).await?;
        }
        tracing::warn!(image_id = %id, stages = ?unfinished, requeues = row.sweep_requeues, "stuck image re-enqueued: no progress for too long");
        report.stuck_requeued += 1;
        Ok(())
    }
}
