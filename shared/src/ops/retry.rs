//! Bringing one failed image back to work: the owner's `POST /api/images/{id}/retry-processing`
//! ([`retry_image`]), and the step retry-all-failed repeats for every failed image
//! ([`requeue_failed`]). Over the ports, so the `images` function, the admin run and the
//! simulator call the very same code.
//!
//! The reset is a write conditional on the row's version: of two concurrent retries of one image
//! only the one whose write wins enqueues, so the image is enqueued once. The winner enqueues one
//! message per reset stage; if a send fails, the row is put back to what it was (`failed`, with
//! its reason) so it can be retried again instead of sitting in `pending` without a message. If
//! even that write fails, the row is left `pending` without a message: the sweeper's sweep of
//! stuck rows re-enqueues it later ([`crate::sweep`]).

use crate::domain::{ImageId, ImageRecord, NotFailed, OwnerId, RetryMessage, Stage, Timestamp};
use crate::ports::{ImageRepository, JobQueue, QueueError, RepoError};

/// Attempts at the conditional reset before the owner is told the image is busy.
pub const WRITE_ATTEMPTS: usize = 3;

/// A retry that was taken: the row as written and the stages enqueued again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retried {
    /// The row after the reset (its failed stages `pending`, the error cleared).
    pub record: ImageRecord,
    /// The stages that went back to work, one message each.
    pub stages: Vec<Stage>,
}

/// Why a retry was not taken.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// No such image, or not the caller's (the two are not told apart).
    #[error("image not found")]
    NotFound,
    /// Only failed processing can be retried.
    #[error(transparent)]
    NotFailed(#[from] NotFailed),
    /// The row kept changing under the conditional write.
    #[error("the image changed while retrying; try again")]
    Busy,
    /// The images table failed.
    #[error("images table: {0}")]
    Repo(#[source] RepoError),
    /// A message could not be sent; the row was put back to failed (when that write worked).
    #[error("job queue: {0}")]
    Queue(#[source] QueueError),
}

/// The owner's retry of image `id` at `now`: re-reads and decides again when another writer gets
/// there first, at most [`WRITE_ATTEMPTS`] times. `NotFound` when the image does not exist or is
/// not `owner`'s.
pub async fn retry_image<R: ImageRepository, Q: JobQueue>(
    images: &R,
    queue: &Q,
    owner: &OwnerId,
    id: ImageId,
    now: Timestamp,
) -> Result<Retried, RetryError> {
    for _ in 0..WRITE_ATTEMPTS {
        let before = match images.get(id).await.map_err(RetryError::Repo)? {
            Some(row) if row.is_visible_to(owner) => row,
            _ => return Err(RetryError::NotFound),
        };
        if let Some(retried) = requeue_failed(images, queue, before, now).await? {
            return Ok(retried);
        }
    }
    Err(RetryError::Busy)
}

/// One conditional reset of the failed row `before` (as read) at `now`; the winner enqueues each
/// reset stage. `NotFailed` when `before` is not failed; `None` when another writer changed the
/// row first: nothing was written or sent (read it again to decide again).
pub async fn requeue_failed<R: ImageRepository, Q: JobQueue>(
    images: &R,
    queue: &Q,
    before: ImageRecord,
    now: Timestamp,
) -> Result<Option<Retried>, RetryError> {
    let mut after = before.clone();
    let stages = after.retry(now)?;
    match images.update(&mut after).await {
        Ok(()) => {}
        Err(RepoError::Conflict) => return Ok(None),
        Err(e) => return Err(RetryError::Repo(e)),
    }
    for stage in &stages {
        let message = RetryMessage::new(after.image_id, after.original_key.clone(), *stage);
        if let Err(e) = queue.enqueue(&message).await {
            tracing::error!(image_id = %after.image_id, error = %e, "re-enqueue failed; restoring the failed status");
            restore(images, before, after.version, now).await;
            return Err(RetryError::Queue(e));
        }
    }
    tracing::info!(image_id = %after.image_id, stages = ?stages, "failed image re-enqueued");
    Ok(Some(Retried {
        record: after,
        stages,
    }))
}

/// Puts the failed row back after its retry could not be enqueued, so it can be retried again
/// rather than sitting in `pending` with no message.
async fn restore<R: ImageRepository>(
    images: &R,
    mut before: ImageRecord,
    current_version: u64,
    now: Timestamp,
) {
    before.version = current_version;
    before.updated_at = now;
    if let Err(e) = images.update(&mut before).await {
        tracing::error!(image_id = %before.image_id, error = %e, "could not restore the failed status; the sweeper will re-enqueue the image");
    }
}

#[cfg(all(test, feature = "testing"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::{ContentType, ErrorKind, NewImage, Status, UploadState};
    use crate::faults::{Faulty, Switch};
    use crate::testing::{MemoryImages, MemoryQueue};

    fn failed_row(owner: &str, now: Timestamp) -> ImageRecord {
        let mut r = ImageRecord::new(
            NewImage {
                image_id: ImageId::new(),
                owner_id: owner.parse().unwrap(),
                filename: None,
                content_type: ContentType::Jpeg,
                byte_size: 10,
                sha256: None,
                upload_state: UploadState::Stored,
            },
            now,
        );
        r.begin(Stage::Variant, now).unwrap();
        r.fail(Stage::Variant, ErrorKind::Permanent, "corrupt", now)
            .unwrap();
        r
    }

    /// A table holding one failed image of `u1`, and that row.
    fn with_failed_row(now: Timestamp) -> (MemoryImages, ImageRecord) {
        let images = MemoryImages::default();
        let row = failed_row("u1", now);
        images.insert(row.clone());
        (images, row)
    }

    #[tokio::test]
    async fn a_retry_resets_the_failed_stage_and_enqueues_it_once() {
        let now = Timestamp::now();
        let (images, row) = with_failed_row(now);
        let queue = MemoryQueue::default();
        let owner: OwnerId = "u1".parse().unwrap();
        let done = retry_image(&images, &queue, &owner, row.image_id, now)
            .await
            .unwrap();
        assert_eq!(done.stages, vec![Stage::Variant]);
        assert_eq!(done.record.variant_status, Status::Pending);
        assert_eq!(queue.sent().len(), 1);
        assert!(matches!(
            retry_image(&images, &queue, &owner, row.image_id, now).await,
            Err(RetryError::NotFailed(_))
        ));
        assert_eq!(queue.sent().len(), 1);
    }

    #[tokio::test]
    async fn another_owners_image_is_not_found_and_left_alone() {
        let now = Timestamp::now();
        let (images, row) = with_failed_row(now);
        let queue = MemoryQueue::default();
        let other: OwnerId = "u2".parse().unwrap();
        assert!(matches!(
            retry_image(&images, &queue, &other, row.image_id, now).await,
            Err(RetryError::NotFound)
        ));
        assert!(queue.sent().is_empty());
        assert_eq!(images.rows()[0].processing_status, Status::Failed);
    }

    #[tokio::test]
    async fn a_send_that_fails_puts_the_row_back_to_failed_with_its_reason() {
        let now = Timestamp::now();
        let (images, row) = with_failed_row(now);
        let switch = Switch::default();
        let queue = Faulty::new(MemoryQueue::default(), switch.clone());
        switch.fail(true);
        let owner: OwnerId = "u1".parse().unwrap();
        assert!(matches!(
            retry_image(&images, &queue, &owner, row.image_id, now).await,
            Err(RetryError::Queue(_))
        ));
        let back = &images.rows()[0];
        assert_eq!(back.processing_status, Status::Failed);
        assert_eq!(back.processing_error.as_deref(), Some("corrupt"));
    }
}
