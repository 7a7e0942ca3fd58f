//! [`RowWriter`]: the writes to image rows. Every change is a read-decide-write with a condition
//! on the row's `version`, made by one helper that decides again on the row that won when another
//! writer got there first. The processors write through it, and so does the sweep
//! ([`crate::ops::sweep`]).

use std::time::Duration;

use crate::domain::{ErrorKind, ImageId, ImageRecord, Stage, Status, Timestamp, TransitionError};
use crate::ports::{ImageRepository, RepoError, Written};

/// Why a row write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    /// The table failed or refused the call.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The change is not allowed from the status the row has now.
    #[error("status changed under us: {0}")]
    Transition(#[source] TransitionError),
    /// Every attempt lost its race with another writer.
    #[error("the image row kept changing concurrently")]
    KeptChanging,
}

/// A short random pause after losing a conditional write, so racing writers spread out.
pub(super) async fn contention_pause(attempt: u32) {
    let ms = (crate::retry::jitter() * (5.0 * f64::from(attempt.min(10)) + 5.0)) as u64;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Conditional writes to the rows of one images table, each retried on conflict at most
/// `attempts` times.
#[derive(Debug)]
pub struct RowWriter<'a, R> {
    images: &'a R,
    attempts: u32,
}

impl<R> Clone for RowWriter<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for RowWriter<'_, R> {}

impl<'a, R: ImageRepository> RowWriter<'a, R> {
    /// Writes to `images`, trying each change at most `attempts` times.
    pub fn new(images: &'a R, attempts: u32) -> Self {
        RowWriter { images, attempts }
    }

    /// Reads row `id` and applies `change` until a write conditional on the version it read
    /// succeeds. `change` returns `Ok(false)` when nothing needs writing (the row is returned as
    /// read). `None` when the row does not exist.
    pub async fn modify(
        &self,
        id: ImageId,
        change: impl Fn(&mut ImageRecord) -> Result<bool, TransitionError>,
    ) -> Result<Option<ImageRecord>, RowError> {
        let current = self.images.get(id).await?;
        self.write(current, change).await
    }

    /// [`Self::modify`] starting from `known`, a row this writer has just read or written, so
    /// the first write needs no read of its own. A write that loses the race comes back with the
    /// row that won ([`ImageRepository::update_or_current`]), and `change` decides again on that
    /// one.
    pub async fn modify_from(
        &self,
        known: ImageRecord,
        change: impl Fn(&mut ImageRecord) -> Result<bool, TransitionError>,
    ) -> Result<Option<ImageRecord>, RowError> {
        self.write(Some(known), change).await
    }

    async fn write(
        &self,
        mut current: Option<ImageRecord>,
        change: impl Fn(&mut ImageRecord) -> Result<bool, TransitionError>,
    ) -> Result<Option<ImageRecord>, RowError> {
        for attempt in 0..self.attempts {
            let Some(mut record) = current.take() else {
                return Ok(None);
            };
            let before = record.clone();
            if !change(&mut record).map_err(RowError::Transition)? {
                return Ok(Some(before));
            }
            match self.images.update_or_current(&mut record).await? {
                Written::Done => return Ok(Some(record)),
                Written::Lost(now) => {
                    current = now.map(|row| *row);
                    contention_pause(attempt).await;
                }
            }
        }
        Err(RowError::KeptChanging)
    }

    /// The row, if it exists.
    pub async fn read(&self, id: ImageId) -> Result<Option<ImageRecord>, RepoError> {
        self.images.get(id).await
    }

    /// Creates `record` unless a row with its id exists already (then that row stands).
    pub async fn create_if_absent(&self, record: &ImageRecord) -> Result<(), RepoError> {
        match self.images.create(record).await {
            Ok(()) | Err(RepoError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Keeps a transient failure's reason on the row while `stage` waits for its retry (a
    /// failure to do so is logged: the retry goes ahead anyway).
    pub async fn note_transient(&self, stage: Stage, id: ImageId, reason: &str) {
        let result = self
            .modify(id, |r| {
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

    /// Fails `stage` for good with `message`, unless it already ended.
    pub async fn finish_failed(
        &self,
        stage: Stage,
        id: ImageId,
        kind: ErrorKind,
        message: &str,
    ) -> Result<(), RowError> {
        self.modify(id, |r| {
            if r.stage_status(stage).is_terminal() {
                return Ok(false);
            }
            r.fail(stage, kind, message, Timestamp::now())
                .map(|()| true)
        })
        .await?;
        Ok(())
    }
}

#[cfg(all(test, feature = "testing"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::{ContentType, NewImage, UploadState};
    use crate::testing::MemoryImages;

    fn stored(images: &MemoryImages) -> ImageRecord {
        let row = ImageRecord::new(
            NewImage {
                image_id: ImageId::new(),
                owner_id: "alice".parse().unwrap(),
                filename: None,
                content_type: ContentType::Jpeg,
                byte_size: 10,
                sha256: None,
                upload_state: UploadState::Stored,
            },
            Timestamp::now(),
        );
        images.insert(row.clone());
        row
    }

    fn begin(r: &mut ImageRecord) -> Result<bool, TransitionError> {
        r.begin(Stage::Thumbnail, Timestamp::now()).map(|()| true)
    }

    #[tokio::test]
    async fn a_change_that_writes_nothing_returns_the_row_as_read_and_a_missing_row_is_none() {
        let images = MemoryImages::default();
        let row = stored(&images);
        let rows = RowWriter::new(&images, 4);
        let read = rows.modify(row.image_id, |_| Ok(false)).await.unwrap();
        assert_eq!(read, Some(row.clone()));
        assert_eq!(images.rows(), vec![row]);
        assert!(rows.modify(ImageId::new(), begin).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_write_from_a_stale_row_decides_again_on_the_row_that_won() {
        let images = MemoryImages::default();
        let stale = stored(&images);
        let rows = RowWriter::new(&images, 4);
        rows.modify(stale.image_id, |r| {
            r.filename = Some("renamed.jpg".into());
            Ok(true)
        })
        .await
        .unwrap();
        let written = rows.modify_from(stale, begin).await.unwrap().unwrap();
        assert_eq!(written.thumbnail_status, Status::Processing);
        assert_eq!(
            written.filename.as_deref(),
            Some("renamed.jpg"),
            "the winner's change is kept"
        );
        assert_eq!(images.rows(), vec![written]);
    }

    #[tokio::test]
    async fn a_writer_that_loses_every_race_gives_up_and_a_refused_transition_is_reported() {
        let images = MemoryImages::default();
        let stale = stored(&images);
        let rows = RowWriter::new(&images, 1);
        rows.modify(stale.image_id, begin).await.unwrap();
        let lost = rows.modify_from(stale.clone(), begin).await;
        assert!(matches!(lost, Err(RowError::KeptChanging)), "{lost:?}");
        let refused = rows
            .modify(stale.image_id, |r| {
                r.complete(Stage::Variant, Default::default(), Timestamp::now())
                    .map(|()| true)
            })
            .await;
        assert!(
            matches!(refused, Err(RowError::Transition(_))),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn failing_a_stage_leaves_one_that_ended_alone() {
        let images = MemoryImages::default();
        let row = stored(&images);
        let rows = RowWriter::new(&images, 4);
        let id = row.image_id;
        rows.finish_failed(Stage::Thumbnail, id, ErrorKind::Permanent, "corrupt")
            .await
            .unwrap();
        rows.finish_failed(Stage::Thumbnail, id, ErrorKind::Transient, "again")
            .await
            .unwrap();
        let failed = rows.read(id).await.unwrap().unwrap();
        assert_eq!(failed.thumbnail_status, Status::Failed);
        assert_eq!(failed.processing_error.as_deref(), Some("corrupt"));
        assert_eq!(failed.error_kind, Some(ErrorKind::Permanent));
    }
}
