//! `POST /api/admin/retry-all-failed`: brings back everything that failed, page by page, at a
//! bounded rate, in calls the caller follows with a cursor (each call works for a time budget
//! well inside API Gateway's 30 s, then answers `done: false` with `next_cursor`).
//!
//! Two phases, both starting from the run's start time (kept in the cursor):
//!
//! 1. **Dead letters**, thumbnails DLQ then variants DLQ. Each message is received with a long
//!    poll (a short poll samples some of SQS's servers and can answer empty with letters there),
//!    hidden from other receivers meanwhile (so concurrent runs never hold the same one), and
//!    decided by its image row:
//!    - stage `failed`: the image's failed stages go back to `pending` with a conditional write
//!      on the row's version. Only the caller whose write wins enqueues (one message per reset
//!      stage) and deletes the dead letter; a loser re-reads and decides again.
//!    - stage `completed`, or `pending` since this run started (re-queued by this run or a
//!      concurrent one): the work is done or queued; the dead letter is deleted.
//!    - no row: the body goes back to its source queue as it is (the processor adopts an
//!      original without a row) and the dead letter is deleted.
//!    - anything else (a row still `processing` or `pending` from before the run, which the
//!      sweeper has not marked failed yet; a row that failed again during this run; an
//!      unreadable body): left in the DLQ, hidden for [`SKIP_HIDE`], and counted as skipped.
//!
//!    A DLQ is done only when a long poll answers empty **and** the DLQ holds no more letters
//!    than this run left hidden itself: letters hidden by another reader (the sweeper keeps the
//!    letters it has seen hidden until its sweep ends; a concurrent run) are still to be brought
//!    back, so the call polls again, and answers `done: false` if its budget ends first.
//! 2. **Failed rows without a dead letter** (permanent failures, or a DLQ message still on its
//!    way), from the `by_status_v2` index, oldest first, up to the run's start: the same
//!    conditional reset, and only the winner enqueues.
//!
//! `dry_run` reads counts only (failed rows from the index, DLQ depths from queue attributes) and
//! changes nothing.

mod cursor;
mod letters;
mod pacer;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::domain::{Stage, Status, Timestamp};
use crate::ports::{
    DeadLetterReceive, ImageRepository, JobQueue, QueueAdmin, QueueError, RepoError, StatusIndex,
    StatusPage,
};
use cursor::Cursor;
use letters::{Fate, Run};
use pacer::Pacer;

/// How long a received dead letter stays hidden while it is handled, and how long a skipped
/// one stays hidden so the same run does not receive it again.
pub const SKIP_HIDE: Duration = Duration::from_secs(300);
/// How long one DLQ receive waits for a letter (a long poll). Any wait of a second or more makes
/// SQS look at all of its servers; a longer one would only spend the call's budget on an empty
/// DLQ. A receive started just before the budget ends may overrun it by this much: the budget is
/// at most 25 s ([`crate::OpsSettings`]), so a call still answers within API Gateway's 30 s.
pub const DLQ_WAIT: Duration = Duration::from_secs(2);
/// Rows read per index page.
const ROW_PAGE: u32 = 25;
/// Attempts at the conditional reset of one row.
const RESET_ATTEMPTS: u32 = 5;

/// What the caller asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryAllRequest {
    /// Report without changing anything.
    #[serde(default)]
    pub dry_run: bool,
    /// The previous answer's `next_cursor`, to continue a run.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// What one call did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetryAllReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Images whose failed stages went back to `pending` and were enqueued (dry run: failed
    /// images found).
    pub images_requeued: u64,
    /// Dead letters whose work went back to the processing queues (dry run: messages in the
    /// DLQs).
    pub messages_redriven: u64,
    /// Dead letters deleted because their work was already done or queued.
    pub duplicates_removed: u64,
    /// Dead letters left in the DLQ (see the module doc for why).
    pub skipped: u64,
    /// Pass it back as `cursor` to continue; `null` when the run is done.
    pub next_cursor: Option<String>,
    /// Whether the run is complete.
    pub done: bool,
}

/// Why a call stopped early; what it did until then is lost only in the report, never in the
/// data (every step is a conditional write or an idempotent send).
#[derive(Debug, thiserror::Error)]
pub enum RetryAllError {
    /// A cursor this API did not hand out.
    #[error("invalid cursor")]
    BadCursor,
    /// The images table failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Limits of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryLimits {
    /// Images re-enqueued per second, at most.
    pub rate_per_sec: u32,
    /// How long one call works before it answers with a cursor.
    pub budget: Duration,
}

/// The ports a run uses.
#[derive(Debug)]
pub struct RetryPorts<'a, R, Q, A> {
    /// The images table and its `by_status_v2` index.
    pub images: &'a R,
    /// The processing queues (to enqueue).
    pub queue: &'a Q,
    /// The queues' DLQs.
    pub admin: &'a A,
}

/// One call of a run.
pub async fn retry_all_failed<R, Q, A>(
    ports: RetryPorts<'_, R, Q, A>,
    request: &RetryAllRequest,
    limits: RetryLimits,
) -> Result<RetryAllReport, RetryAllError>
where
    R: ImageRepository + StatusIndex,
    Q: JobQueue,
    A: QueueAdmin,
{
    if request.dry_run {
        let failed = ports.images.count_by_status(Status::Failed).await?;
        let mut dead = 0;
        for stage in Stage::ALL {
            dead += ports.admin.depth(stage, true).await?.total();
        }
        return Ok(RetryAllReport {
            dry_run: true,
            images_requeued: failed,
            messages_redriven: dead,
            done: true,
            ..RetryAllReport::default()
        });
    }
    let mut cursor = match &request.cursor {
        Some(text) => Cursor::decode(text)?,
        None => Cursor {
            started_at: Timestamp::now(),
            dlq: Some(Stage::Thumbnail),
            left_hidden: 0,
            rows: None,
        },
    };
    let deadline = Instant::now() + limits.budget;
    let mut pacer = Pacer::new(limits.rate_per_sec);
    let mut report = RetryAllReport::default();
    let run = Run {
        ports: &ports,
        started_at: cursor.started_at,
    };

    while let Some(stage) = cursor.dlq {
        if Instant::now() >= deadline {
            return Ok(report.more(&cursor));
        }
        let letters = ports
            .admin
            .receive_dead_letters(&DeadLetterReceive {
                stage,
                max: 10,
                hide_for: SKIP_HIDE,
                wait: DLQ_WAIT,
            })
            .await?;
        if letters.is_empty() {
            // Nothing visible; letters hidden by another reader are not done with yet.
            let held = ports.admin.depth(stage, true).await?;
            if held.total() > cursor.left_hidden {
                tracing::info!(%stage, in_dlq = held.total(), left_hidden = cursor.left_hidden, "dead letters held by another reader: polling again");
                continue;
            }
            cursor.dlq = match stage {
                Stage::Thumbnail => Some(Stage::Variant),
                Stage::Variant => None,
            };
            cursor.left_hidden = 0;
            continue;
        }
        for letter in &letters {
            match run.dead_letter(stage, letter, &mut pacer).await? {
                Fate::Requeued => {
                    report.images_requeued += 1;
                    report.messages_redriven += 1;
                }
                Fate::Redriven => report.messages_redriven += 1,
                Fate::Duplicate => report.duplicates_removed += 1,
                Fate::Skip(why) => {
                    tracing::info!(stage = %stage, message_id = %letter.message_id, why, "dead letter left in the DLQ");
                    report.skipped += 1;
                    cursor.left_hidden += 1;
                }
            }
        }
    }

    loop {
        if Instant::now() >= deadline {
            return Ok(report.more(&cursor));
        }
        let page = ports
            .images
            .page_by_status(
                StatusPage::oldest_first(Status::Failed, ROW_PAGE).after(cursor.rows.as_deref()),
            )
            .await?;
        for row in &page.items {
            if row.status_since() > cursor.started_at {
                // Failed after the run started (maybe again): the next run's business, and so
                // is every row after it (the index orders them by when they failed).
                return Ok(report.finished());
            }
            if Instant::now() >= deadline {
                // Rows reset so far have left the failed index: this page's start finds the rest.
                return Ok(report.more(&cursor));
            }
            if run
                .reset_and_enqueue(row.clone(), &mut pacer)
                .await?
                .is_some()
            {
                report.images_requeued += 1;
            }
        }
        match page.next {
            Some(next) => cursor.rows = Some(next),
            None => return Ok(report.finished()),
        }
    }
}

impl RetryAllReport {
    fn more(mut self, cursor: &Cursor) -> Self {
        self.next_cursor = cursor.encode();
        self.done = self.next_cursor.is_none();
        self
    }

    fn finished(mut self) -> Self {
        self.next_cursor = None;
        self.done = true;
        self
    }
}
