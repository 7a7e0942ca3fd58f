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
