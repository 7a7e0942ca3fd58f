//! The pipeline's writes to the image row. Every change is a read-decide-write with a condition
//! on the row's `version`, made by one helper ([`Processor::modify`]) that re-reads and decides
//! again when another writer got there first.

use std::time::Duration;

use crate::domain::{
    ContentType, ErrorKind, ImageId, ImageRecord, Job, NewImage, Status, Timestamp,
    TransitionError, UploadState,
};
use crate::ports::{
    ControlStore, ImageRepository, JobQueue, ObjectStore, RepoError, StoredObject, Written,
};

use super::{JobFailure, Processor};

/// A short random pause after losing a conditional write, so racing writers spread out.
pub(super) async fn contention_pause(attempt: u32) {
    let ms = (crate::retry::jitter() * (5.0 * f64::from(attempt.min(10)) + 5.0)) as u64;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// The one retry-on-conflict helper: reads row `id` and applies `change` until a write
/// conditional on the version it read succeeds (at most `attempts` times). `change` returns
/// `Ok(false)` when nothing needs writing. `None` when the row does not exist.
pub async fn modify_row<R: ImageRepository>(
    images: &R,
    id: ImageId,
    attempts: u32,
    change: impl Fn(&mut ImageRecord) -> Result<bool, TransitionError>,
) -> Result<Option<ImageRecord>, JobFailure> {
    modify_known(images, id, None, attempts, change).await
}

/// [`modify_row`] starting from `known`, a row this writer has just read or written, so the
/// first write needs no read of its own. A write that loses the race comes back with the row
/// that won ([`ImageRepository::update_or_current`]), and `change` decides again on that one.
pub async fn modify_known<R: ImageRepository>(
    images: &R,
    id: ImageId,
    known: Option<ImageRecord>,
    attempts: u32,
    change: impl Fn(&mut ImageRecord) -> Result<bool, TransitionError>,
) -> Result<Option<ImageRecord>, JobFailure> {
    let mut current = match known {
        Some(row) => Some(row),
        None => images.get(id).await?,
    };
    for attempt in 0..attempts {
        let Some(mut record) = current.take() else {
            return Ok(None);
        };
        let before = record.clone();
        match change(&mut record) {
            Ok(false) => return Ok(Some(before)),
            Ok(true) => {}
            Err(e) => {
                return Err(JobFailure::Retryable {
                    reason: format!("status changed under us: {e}"),
                    source: Some(Box::new(e)),
                });
            }
        }
        match images.update_or_current(&mut record).await? {
            Written::Done => return Ok(Some(record)),
            Written::Lost(now) => {
                current = now.map(|row| *row);
                contention_pause(attempt).await;
            }
        }
    }
    Err(JobFailure::retryable(
        "the image row kept changing concurrently",
    ))
}

impl<S: ObjectStore, R: ImageRepository, Q: JobQueue, C: ControlStore> Processor<S, R, Q, C> {
    /// [`modify_row`] on this job's row with the policy's attempts.
    pub(super) async fn modify(
        &self,
        job: &Job,
        change: impl Fn(&mut ImageRecord) -> Result<bool, TransitionError>,
    ) -> Result<Option<ImageRecord>, JobFailure> {
        self.modify_from(job, None, change).await
    }

    /// [`modify_known`] on this job's row, from the row this attempt last read or wrote.
    pub(super) async fn modify_from(
        &self,
        job: &Job,
        known: Option<ImageRecord>,
        change: impl Fn(&mut ImageRecord) -> Result<bool, TransitionError>,
    ) -> Result<Option<ImageRecord>, JobFailure> {
        modify_known(
            &self.images,
            job.image_id,
            known,
            self.policy.write_attempts,
            change,
        )
        .await
    }

    /// Keeps a transient failure's reason on the row while the stage waits for its retry.
    pub(super) async fn note_transient(&self, job: &Job, reason: &str) {
        let stage = self.stage;
        let result = self
            .modify(job, |r| {
                if r.stage_status(stage) != Status::Processing {
                    return Ok(false);
                }
                r.note_transient(stage, reason, Timestamp::now())
                    .map(|()| true)
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not note the transient failure on the row");
        }
    }

    /// Fails the stage for good with `message`, unless it already ended.
    pub(super) async fn finish_failed(
        &self,
        job: &Job,
        kind: ErrorKind,
        message: &str,
    ) -> Result<(), JobFailure> {
        let stage = self.stage;
        self.modify(job, |r| {
            if r.stage_status(stage).is_terminal() {
                return Ok(false);
            }
            r.fail(stage, kind, message, Timestamp::now())
                .map(|()| true)
        })
        .await?;
        Ok(())
    }

    /// Reads the row, adopting an original that has none: an object under
    /// `originals/{owner}/{image_id}` with no row (e.g. put there by a migration) becomes a new
    /// image of the key's owner, typed by its magic bytes.
    pub(super) async fn row_or_adopt(
        &self,
        job: &Job,
        original: &mut Option<StoredObject>,
    ) -> Result<ImageRecord, JobFailure> {
        if let Some(r) = self.images.get(job.image_id).await? {
            return Ok(r);
        }
        let object = self.store.get(&job.key, None).await?;
        let Some(content_type) = ContentType::sniff(&object.bytes) else {
            return Err(JobFailure::permanent(
                ErrorKind::Rejected,
                "an original without a row is not a recognisable image; ignored",
            ));
        };
        let record = ImageRecord::new(
            NewImage {
                image_id: job.image_id,
                owner_id: job.owner.clone(),
                filename: None,
                content_type,
                byte_size: object.bytes.len() as u64,
                sha256: None,
                upload_state: UploadState::Stored,
            },
            Timestamp::now(),
        );
        tracing::info!(owner = %job.owner, "adopting an original that had no row");
        match self.images.create(&record).await {
            Ok(()) | Err(RepoError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
        *original = Some(object);
        self.images
            .get(job.image_id)
            .await?
            .ok_or_else(|| JobFailure::retryable("the adopted row vanished"))
    }
}
