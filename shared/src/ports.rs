//! The ports the domain needs from the outside world. Adapters in `aws` implement them for
//! S3 and DynamoDB; `testing` has in-memory fakes for handler tests.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use crate::domain::{ImageId, ImageRecord, ObjectKey, OwnerId, RetryMessage, Stage, Timestamp};

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Failures of the object store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist.
    #[error("object {0} does not exist")]
    NotFound(String),
    /// The store failed or could not be reached; retrying may help.
    #[error("object storage failed: {0}")]
    Unavailable(#[source] BoxError),
}

/// Failures of the image repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// A conditional write lost a race: the row changed (or exists) since it was read.
    #[error("the image row changed concurrently")]
    Conflict,
    /// A stored row could not be read as an image record.
    #[error("stored image row is malformed: {0}")]
    Malformed(String),
    /// A pagination cursor that this API did not hand out.
    #[error("invalid pagination cursor")]
    BadCursor,
    /// The table failed or could not be reached; retrying may help.
    #[error("image table failed: {0}")]
    Unavailable(#[source] BoxError),
}

/// What a presigned upload must carry; the signature covers every field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadConstraints {
    /// The exact `Content-Type`.
    pub content_type: String,
    /// The exact size (PUT) or the upper bound (POST policy's `content-length-range`).
    pub content_length: u64,
    /// The base64 SHA-256 the body must have, when the client declared it.
    pub sha256_base64: Option<String>,
}

/// A presigned request the browser sends as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    /// HTTP method (`PUT`).
    pub method: String,
    /// The URL, signature included.
    pub url: String,
    /// Headers that must be sent exactly.
    pub headers: BTreeMap<String, String>,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// A presigned POST (HTML form upload) with its signed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedPost {
    /// The form's action URL.
    pub url: String,
    /// Form fields to send before the `file` field.
    pub fields: BTreeMap<String, String>,
    /// When the policy expires.
    pub expires_at: Timestamp,
}

/// Object metadata from a HEAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
    /// Stored `Content-Type`.
    pub content_type: Option<String>,
}

/// The bucket.
pub trait ObjectStore: Send + Sync {
    /// Stores an object.
    fn put(
        &self,
        key: &ObjectKey,
        body: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Reads a whole object.
    fn get(&self, key: &ObjectKey) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;
    /// Reads an object's metadata; `None` when it does not exist.
    fn head(
        &self,
        key: &ObjectKey,
    ) -> impl Future<Output = Result<Option<ObjectMeta>, StoreError>> + Send;
    /// Deletes an object (absent is fine).
    fn delete(&self, key: &ObjectKey) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A presigned PUT with content type, length (and checksum) signed.
    fn presign_put(
        &self,
        key: &ObjectKey,
        constraints: &UploadConstraints,
        expires_in: Duration,
    ) -> impl Future<Output = Result<PresignedRequest, StoreError>> + Send;
    /// A presigned POST policy for exactly this key, type and a size range up to the length.
    fn presign_post(
        &self,
        key: &ObjectKey,
        constraints: &UploadConstraints,
        expires_in: Duration,
    ) -> impl Future<Output = Result<PresignedPost, StoreError>> + Send;
    /// A short-lived GET URL.
    fn presign_get(
        &self,
        key: &ObjectKey,
        expires_in: Duration,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Opaque cursor for the next page, if there is one.
    pub next: Option<String>,
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
    /// An owner's rows, newest first.
    fn list_by_owner(
        &self,
        owner: &OwnerId,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<ImageRecord>, RepoError>> + Send;
    /// Replaces the row if it still has `record.version`; on success `record.version` is bumped.
    /// `Conflict` when someone else wrote first: re-read, re-apply, retry.
    fn update(
        &self,
        record: &mut ImageRecord,
    ) -> impl Future<Output = Result<(), RepoError>> + Send;
    /// Removes a row (used to undo a half-made upload).
    fn delete(&self, id: ImageId) -> impl Future<Output = Result<(), RepoError>> + Send;
}

/// Failures of the job queues.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue failed or could not be reached; retrying may help.
    #[error("job queue failed: {0}")]
    Unavailable(#[source] BoxError),
    /// This function has no queue configured for the stage.
    #[error("no queue is configured for the {0} stage")]
    NotConfigured(Stage),
}

/// The thumbnails and variants queues.
pub trait JobQueue: Send + Sync {
    /// Sends a processing message to the stage's queue.
    fn enqueue(
        &self,
        message: &RetryMessage,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// Hides a received message for `delay` (SQS `ChangeMessageVisibility`): backoff, or a
    /// deferral while the circuit breaker is open.
    fn delay(
        &self,
        stage: Stage,
        receipt_handle: &str,
        delay: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}
