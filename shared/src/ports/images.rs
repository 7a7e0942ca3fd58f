//! The images table: rows by id and by owner, and its status index.

use std::future::Future;

use super::{BoxError, Page, PageRequest};
use crate::domain::{ImageId, ImageRecord, OwnerId, Status};

/// Failures of the image repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// A conditional write lost a race: the row changed (or exists) since it was read.
    #[error("the image row changed concurrently")]
    Conflict,
    /// A stored row could not be read as `what` (or a value could not be written as one).
    #[error("stored image row is malformed: {what}: {source}")]
    Malformed {
        /// What the row was read as.
        what: &'static str,
        /// Why it could not be.
        #[source]
        source: BoxError,
    },
    /// A pagination cursor that this API did not hand out.
    #[error("invalid pagination cursor")]
    BadCursor,
    /// The table failed or could not be reached; retrying may help.
    #[error("image table failed: {0}")]
    Unavailable(#[source] BoxError),
    /// The table refused the call for a reason retrying soon will not fix: access denied, an
    /// unusable KMS key, a missing table (a permissions or configuration problem).
    #[error("table refused the call (a permissions or configuration problem): {0}")]
    Refused(#[source] BoxError),
}

impl RepoError {
    /// A row that could not be read (or written) as `what`, and why: an error, or a message.
    pub fn malformed(what: &'static str, source: impl Into<BoxError>) -> Self {
        RepoError::Malformed {
            what,
            source: source.into(),
        }
    }
}

/// The outcome of [`ImageRepository::update_or_current`].
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// The row was replaced; the record's `version` is bumped.
    Done,
    /// Another writer got there first: the row as it is now (`None`: deleted).
    Lost(Option<Box<ImageRecord>>),
}

/// The images table.
pub trait ImageRepository: Send + Sync {
    /// Writes a new row; `Conflict` if the id exists.
    fn create(&self, record: &ImageRecord) -> impl Future<Output = Result<(), RepoError>> + Send;
    /// Reads a row.
    fn get(
        &self,
        id: ImageId,
    ) -> impl Future<Output = Result<Option<ImageRecord>, RepoError>> + Send;
    /// A page of an owner's rows, newest first.
    fn list_by_owner(
        &self,
        page: OwnerPage<'_>,
    ) -> impl Future<Output = Result<Page<ImageRecord>, RepoError>> + Send;
    /// Replaces the row if it still has `record.version`; on success `record.version` is bumped.
    /// `Conflict` when someone else wrote first: re-read, re-apply, retry.
    fn update(
        &self,
        record: &mut ImageRecord,
    ) -> impl Future<Output = Result<(), RepoError>> + Send;
    /// [`Self::update`] that answers a lost race with the row that won, so the writer decides
    /// again without a read of its own: a store that can return the current item with the
    /// refused write (DynamoDB's `ReturnValuesOnConditionCheckFailure`) overrides this; the
    /// default reads it. `Lost(None)` when the row is gone.
    fn update_or_current(
        &self,
        record: &mut ImageRecord,
    ) -> impl Future<Output = Result<Written, RepoError>> + Send {
        async move {
            match self.update(record).await {
                Ok(()) => Ok(Written::Done),
                Err(RepoError::Conflict) => Ok(Written::Lost(
                    self.get(record.image_id).await?.map(Box::new),
                )),
                Err(e) => Err(e),
            }
        }
    }
    /// Removes a row (used to undo a half-made upload).
    fn delete(&self, id: ImageId) -> impl Future<Output = Result<(), RepoError>> + Send;
}

/// Which page of an owner's rows to read (see [`ImageRepository::list_by_owner`]).
pub type OwnerPage<'a> = PageRequest<'a, &'a OwnerId>;

/// Which page of the images with a status to read (see [`StatusIndex::page_by_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusPage<'a> {
    /// The status listed.
    pub status: Status,
    /// Least recently updated first (else most recently updated first).
    pub oldest_first: bool,
    /// At most how many images (at least one).
    pub limit: u32,
    /// The previous page's `next` (`None`: the first page).
    pub cursor: Option<&'a str>,
}

impl<'a> StatusPage<'a> {
    /// The first page of the images with `status`, least recently updated first.
    pub fn oldest_first(status: Status, limit: u32) -> Self {
        StatusPage {
            status,
            oldest_first: true,
            limit,
            cursor: None,
        }
    }

    /// The first page of the images with `status`, most recently updated first.
    pub fn newest_first(status: Status, limit: u32) -> Self {
        StatusPage {
            oldest_first: false,
            ..Self::oldest_first(status, limit)
        }
    }

    /// The page after the one whose `next` is `cursor` (the first page for `None`).
    pub fn after(self, cursor: Option<&'a str>) -> Self {
        StatusPage { cursor, ..self }
    }
}

/// The images table's sparse, write-sharded `by_status_v2` index (`status_key`, `updated_at`;
/// see [`crate::status_index`]): counts and pages of the `pending`, `processing` and `failed`
/// rows without a table scan. Completed rows are not in it: their count is the completed
/// counter ([`super::ThroughputLog::completed_total`]) and a page of them is empty.
pub trait StatusIndex: Send + Sync {
    /// How many images have `status` (COUNT queries over its shards, which hold only the rows
    /// in flight or failed); 0 for `completed`.
    fn count_by_status(
        &self,
        status: Status,
    ) -> impl Future<Output = Result<u64, RepoError>> + Send;
    /// One page of the images with `page.status`, by (`updated_at`, `image_id`) merged over the
    /// shards (oldest first when `page.oldest_first`); `page.cursor` is the previous page's
    /// `next`, and resumes every shard where the previous page stopped taking from it.
    fn page_by_status(
        &self,
        page: StatusPage<'_>,
    ) -> impl Future<Output = Result<Page<ImageRecord>, RepoError>> + Send;
}
