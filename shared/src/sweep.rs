//! The sweep that leaves no row behind (the `sweeper` function, on a schedule).
//!
//! 1. **Dead letters.** A message lands in a processing DLQ after its last receive. The
//!    processors mark the row failed on that receive when they can; when they could not (the
//!    process died, the invocation timed out, the row write failed), the row would stay
//!    `processing` or `pending` for ever, and retry needs `failed`. The sweep peeks both DLQs —
//!    receives each message, marks its image's stage failed with what the message went through,
//!    and makes the message visible again: messages **stay** in the DLQs for operators, alarms
//!    and the admin redrive. A stage is only failed when its row has not changed for
//!    [`SweepPolicy::stale_after`], so an image the owner retried meanwhile (a fresh message
//!    in flight) is left alone.
//! 2. **Expired uploads.** A row whose presigned upload never came stays `pending` /
//!    `awaiting_upload`. After the presigned lifetime plus [`SweepPolicy::upload_grace`] no
//!    upload can start any more: the row's final state is `failed`, `error_kind` `rejected`,
//!    `upload_state` `expired` ([`ImageRecord::expire_upload`]). TTL is no substitute: it is
//!    not enforced locally, and deleting the row would hide the failure from its owner.

use std::collections::HashSet;
use std::time::Duration;

use crate::domain::{ErrorKind, ImageRecord, Stage, Status, Timestamp, UploadState};
use crate::events::parse_jobs;
use crate::ports::{ImageRepository, QueueAdmin, QueueError, RepoError, StatusIndex};
use crate::processing::rows::modify_row;
use crate::processing::JobFailure;
use crate::retry::MAX_RECEIVES;

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
    /// How long a peeked DLQ message stays hidden while the sweep looks at it.
    pub peek_for: Duration,
    /// Attempts at a conditional row write.
    pub write_attempts: u32,
}

impl Default for SweepPolicy {
    fn default() -> Self {
        SweepPolicy {
            stale_after: Duration::from_secs(15 * 60),
            presign_lifetime: Duration::from_secs(15 * 60),
            upload_grace: Duration::from_secs(5 * 60),
            peek_for: Duration::from_secs(60),
            write_attempts: 8,
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// DLQ messages looked at (and left in their queue).
    pub dead_letters_seen: u32,
    /// Image stages failed because their message is in a DLQ.
    pub stages_failed: u32,
    /// Rows whose upload never came, now `failed` / `expired`.
    pub uploads_expired: u32,
}

/// Why a sweep stopped early (what it did so far is kept; the next sweep continues).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A DLQ could not be read or released.
    #[error("dead-letter queue: {0}")]
    Queue(#[from] QueueError),
    /// The images table failed.
    #[error("images table: {0}")]
    Table(#[from] RepoError),
    /// A row could not be written.
    #[error("row update: {0}")]
    Row(#[from] JobFailure),
}

/// The sweep over its ports.
#[derive(Debug)]
pub struct Sweeper<R, Q> {
    images: R,
    dead_letters: Q,
    policy: SweepPolicy,
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

impl<R: ImageRepository + StatusIndex, Q: QueueAdmin> Sweeper<R, Q> {
    /// A sweep over the images table and the DLQs.
    pub fn new(images: R, dead_letters: Q, policy: SweepPolicy) -> Self {
        Sweeper {
            images,
            dead_letters,
            policy,
        }
    }

    /// The images table port (tests inspect it).
    pub fn images(&self) -> &R {
        &self.images
    }

    /// The dead-letter queues port (tests inspect it).
    pub fn dead_letters(&self) -> &Q {
        &self.dead_letters
    }

    /// One sweep at `now`: both DLQs, then the expired uploads.
    pub async fn run(&self, now: Timestamp) -> Result<SweepReport, SweepError> {
        let mut report = SweepReport::default();
        for stage in Stage::ALL {
            self.sweep_dead_letters(stage, now, &mut report).await?;
        }
        self.expire_uploads(now, &mut report).await?;
        tracing::info!(?report, "sweep done");
        Ok(report)
    }

    async fn sweep_dead_letters(
        &self,
        stage: Stage,
        now: Timestamp,
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        let stale_before = now.plus_secs(-(self.policy.stale_after.as_secs() as i64));
        let mut seen = HashSet::new();
        loop {
            let letters = self
                .dead_letters
                .receive_dead_letters(stage, 10, self.policy.peek_for)
                .await?;
            let fresh: Vec<_> = letters
                .into_iter()
                .filter(|l| seen.insert(l.message_id.clone()))
                .collect();
            if fresh.is_empty() {
                return Ok(());
            }
            for letter in fresh {
                report.dead_letters_seen += 1;
                // Unreadable bodies stay for a human; nothing to mark.
                for job in parse_jobs(&letter.body).unwrap_or_default() {
                    let failed = modify_row(
                        &self.images,
                        job.image_id,
                        self.policy.write_attempts,
                        |r| {
                            if r.stage_status(stage).is_terminal() || r.updated_at >= stale_before {
                                return Ok(false);
                            }
                            let reason = dead_letter_reason(stage, r);
                            r.fail(stage, ErrorKind::Transient, &reason, now)
                                .map(|()| true)
                        },
                    )
                    .await?;
                    if failed.is_some_and(|r| {
                        r.stage_status(stage) == Status::Failed && r.updated_at == now
                    }) {
                        tracing::warn!(image_id = %job.image_id, %stage, "dead-lettered image marked failed");
                        report.stages_failed += 1;
                    }
                }
                // Leave it where it is, visible again at once.
                self.dead_letters
                    .release_dead_letter(stage, &letter.receipt_handle, Duration::ZERO)
                    .await?;
            }
        }
    }

    async fn expire_uploads(
        &self,
        now: Timestamp,
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        let window = self.policy.presign_lifetime + self.policy.upload_grace;
        let expired_before = now.plus_secs(-(window.as_secs() as i64));
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .images
                .page_by_status(Status::Pending, true, 100, cursor.as_deref())
                .await?;
            for row in &page.items {
                // Oldest first: past the horizon, nothing later has expired either.
                if row.updated_at >= expired_before {
                    return Ok(());
                }
                if row.upload_state != UploadState::AwaitingUpload {
                    continue;
                }
                let expired = modify_row(
                    &self.images,
                    row.image_id,
                    self.policy.write_attempts,
                    |r| {
                        if r.upload_state != UploadState::AwaitingUpload
                            || r.processing_status != Status::Pending
                            || r.updated_at >= expired_before
                        {
                            return Ok(false);
                        }
                        r.expire_upload(now).map(|()| true)
                    },
                )
                .await?;
                if expired.is_some_and(|r| r.upload_state == UploadState::Expired) {
                    tracing::info!(image_id = %row.image_id, "upload never came; row expired");
                    report.uploads_expired += 1;
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }
}
