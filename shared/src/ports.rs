//! The ports the domain needs from the outside world. Adapters in `aws` implement them for
//! S3 and DynamoDB; `testing` has in-memory fakes for handler tests.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use crate::breaker::Breaker;
use crate::domain::{
    ImageId, ImageRecord, LegacyRow, LinkWindow, Marker, ObjectKey, OwnerId, RetryMessage, Stage,
    Timestamp,
};

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
    /// The store refused the call for a reason retrying soon will not fix: access denied, an
    /// unusable KMS key, a missing bucket (a permissions or configuration problem).
    #[error("object storage refused the call (a permissions or configuration problem): {0}")]
    Refused(#[source] BoxError),
}

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

/// What a presigned upload must carry; the signature covers every field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadConstraints {
    /// The exact `Content-Type`.
    pub content_type: String,
    /// The exact size (PUT `Content-Length`, POST policy `content-length-range` n..n).
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
    /// The current version's id (`None` on a bucket without versioning).
    pub version: Option<String>,
}

/// An object's bytes and the version they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// The whole body.
    pub bytes: Vec<u8>,
    /// The version read (`None` on a bucket without versioning, or for an object stored before
    /// versioning was enabled).
    pub version: Option<String>,
}

/// The bucket.
pub trait ObjectStore: Send + Sync {
    /// Stores an object (a derivative with its [`ObjectKey::cache_control`]).
    fn put(
        &self,
        key: &ObjectKey,
        body: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Reads a whole object: the current version, or the given one (`NotFound` when that
    /// version does not exist).
    fn get(
        &self,
        key: &ObjectKey,
        version: Option<&str>,
    ) -> impl Future<Output = Result<StoredObject, StoreError>> + Send;
    /// Reads an object's metadata; `None` when it does not exist.
    fn head(
        &self,
        key: &ObjectKey,
    ) -> impl Future<Output = Result<Option<ObjectMeta>, StoreError>> + Send;
    /// Deletes an object (absent is fine).
    fn delete(&self, key: &ObjectKey) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes one version of an object for good (absent is fine); when it was the current one,
    /// the previous version becomes current again.
    fn delete_version(
        &self,
        key: &ObjectKey,
        version: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A presigned PUT with content type, length (and checksum) signed, and `If-None-Match: *`:
    /// it can create the object once and never replace it.
    fn presign_put(
        &self,
        key: &ObjectKey,
        constraints: &UploadConstraints,
        expires_in: Duration,
    ) -> impl Future<Output = Result<PresignedRequest, StoreError>> + Send;
    /// A presigned POST policy for exactly this key, type and length.
    fn presign_post(
        &self,
        key: &ObjectKey,
        constraints: &UploadConstraints,
        expires_in: Duration,
    ) -> impl Future<Output = Result<PresignedPost, StoreError>> + Send;
}

/// Download links for the browser: S3 presigned GETs, or a CDN's signed URLs.
pub trait Downloads: Send + Sync {
    /// A GET URL for `key` (of the given version when there is one), signed for `window`: the
    /// same URL for every call within the window (see [`LinkWindow`]).
    fn link(
        &self,
        key: &ObjectKey,
        version: Option<&str>,
        window: LinkWindow,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Opaque cursor for the next page, if there is one.
    pub next: Option<String>,
}

/// The images table.
/// The outcome of [`ImageRepository::update_or_current`].
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// The row was replaced; the record's `version` is bumped.
    Done,
    /// Another writer got there first: the row as it is now (`None`: deleted).
    Lost(Option<Box<ImageRecord>>),
}

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
    /// Sends a copy of a received message body to the stage's queue, invisible for `delay`
    /// (at most 15 minutes). Deferring this way, then deleting the original, does not use up
    /// the original's receives, so an open circuit never pushes work into the DLQ. The copy
    /// carries `deferred_since` (the first deferral of the original message, a message
    /// attribute), so a chain of deferrals has a bounded total age.
    fn requeue(
        &self,
        stage: Stage,
        body: &str,
        delay: Duration,
        deferred_since: Option<Timestamp>,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// Who takes a processing lease: one receive of one SQS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder<'a> {
    /// The SQS message id (the same for every receive of the message).
    pub message_id: &'a str,
    /// Its `ApproximateReceiveCount` at this receive.
    pub receive: u32,
}

/// What taking a processing lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// The lease was free (or another holder's had expired): the caller holds it now.
    Taken,
    /// The caller holds it now, and it was last taken by an earlier receive of the same message
    /// whose time has run out without a release: that attempt's process died, its invocation
    /// timed out (then it says so, see [`ControlStore::mark_out_of_time`]), or its release
    /// failed.
    Abandoned {
        /// How many attempts took the lease since it was last released (at least 1).
        attempts: u32,
        /// The last of them recorded, shortly before its invocation's deadline, that it was still
        /// running: it ran out of time rather than crashed.
        ran_out_of_time: bool,
    },
    /// The same message holds it and its time has not run out: a duplicate delivery of a
    /// message whose attempt is (or may still be) running. Not taken.
    Running {
        /// When the live attempt's lease runs out.
        until: Timestamp,
    },
    /// Another message holds it: a duplicate is being processed. Not taken.
    HeldElsewhere,
}

/// A processing lease as stored, read without taking it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    /// The message that took it last.
    pub holder: String,
    /// That message's receive count when it took it.
    pub receive: u32,
    /// Until when it is held.
    pub until: Timestamp,
    /// How many attempts took it since it was last released.
    pub attempts: u32,
    /// The last holder recorded that it ran out of time.
    pub ran_out_of_time: bool,
}

impl LeaseView {
    /// Whether `holder` is the receive that holds it.
    pub fn is_held_by(&self, holder: &Holder<'_>) -> bool {
        self.holder == holder.message_id && self.receive == holder.receive
    }
}

/// The control table: circuit breakers and processing leases.
pub trait ControlStore: Send + Sync {
    /// The stage's breaker and its version (0 when never written).
    fn load_breaker(
        &self,
        stage: Stage,
    ) -> impl Future<Output = Result<(Breaker, u64), RepoError>> + Send;
    /// Writes the breaker if it still has `expected_version`; `Conflict` otherwise.
    fn save_breaker(
        &self,
        stage: Stage,
        breaker: &Breaker,
        expected_version: u64,
    ) -> impl Future<Output = Result<(), RepoError>> + Send;
    /// Takes the processing lease for (stage, image) until `until` if it is free or its time
    /// has run out (`now` is past its `until`), counting the takes since its last release. Every
    /// attempt releases its lease when it ends, so finding it run out under an earlier receive of
    /// the same message means that receive's attempt never ended ([`Lease::Abandoned`]); finding
    /// it live under the same message is a duplicate delivery ([`Lease::Running`]).
    fn acquire_lease(
        &self,
        stage: Stage,
        image: ImageId,
        holder: &Holder<'_>,
        until: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<Lease, RepoError>> + Send;
    /// Records on the lease, if `holder` (that very receive) still holds it, that its attempt is
    /// about to run out of the invocation's time (so the next attempt knows it was not a crash).
    fn mark_out_of_time(
        &self,
        stage: Stage,
        image: ImageId,
        holder: &Holder<'_>,
    ) -> impl Future<Output = Result<(), RepoError>> + Send;
    /// Reads the lease of (stage, image) without taking it; `None` when there is none.
    fn lease(
        &self,
        stage: Stage,
        image: ImageId,
    ) -> impl Future<Output = Result<Option<LeaseView>, RepoError>> + Send;
    /// Gives the lease up if `holder` (that very receive) still holds it.
    fn release_lease(
        &self,
        stage: Stage,
        image: ImageId,
        holder: &Holder<'_>,
    ) -> impl Future<Output = Result<(), RepoError>> + Send;
}

// ----------------------------------------------------------------------------- live notices

/// Failures of the connections table, the notice log and the WebSocket management API.
#[derive(Debug, thiserror::Error)]
pub enum RealtimeError {
    /// A stored row could not be read back as `what` (or a value could not be written as one).
    #[error("stored realtime row is malformed: {what}: {source}")]
    Malformed {
        /// What the row was read as.
        what: &'static str,
        /// Why it could not be.
        #[source]
        source: BoxError,
    },
    /// The table or API failed or could not be reached; retrying may help.
    #[error("realtime storage or delivery failed: {0}")]
    Unavailable(#[source] BoxError),
}

impl RealtimeError {
    /// A row that could not be read (or written) as `what`, and why: an error, or a message.
    pub fn malformed(what: &'static str, source: impl Into<BoxError>) -> Self {
        RealtimeError::Malformed {
            what,
            source: source.into(),
        }
    }
}

/// A WebSocket connection of an owner (a row of the connections table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// API Gateway's connection id.
    pub connection_id: String,
    /// Whose notices it receives.
    pub owner: OwnerId,
    /// When `$connect` accepted it.
    pub connected_at: Timestamp,
    /// When the row stops counting (API Gateway closes connections after 2 h).
    pub expires_at: Timestamp,
}

/// The connections table. Reads treat expired rows as absent (TTL deletion is lazy on AWS and
/// not done at all by the local emulator).
pub trait ConnectionRepository: Send + Sync {
    /// Stores (or replaces) a connection.
    fn put(
        &self,
        connection: &Connection,
    ) -> impl Future<Output = Result<(), RealtimeError>> + Send;
    /// Reads a connection unless it is absent or expired at `now`.
    fn get(
        &self,
        connection_id: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<Connection>, RealtimeError>> + Send;
    /// Removes a connection (absent is fine).
    fn delete(&self, connection_id: &str)
        -> impl Future<Output = Result<(), RealtimeError>> + Send;
    /// The owner's connections that have not expired at `now`.
    fn for_owner(
        &self,
        owner: &OwnerId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<Connection>, RealtimeError>> + Send;
}

/// The idempotency record of one notice derived from one stream record: which notice (with its
/// seq) the record produced, and to which connections it has been delivered. A redelivered stream
/// record finds it and resends only what is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The owner the notice is for.
    pub owner: OwnerId,
    /// The notice, numbered.
    pub notice: crate::domain::Notice,
    /// Connections that got it (or turned out to be gone).
    pub delivered: std::collections::BTreeSet<String>,
    /// Every connection of the owner was served: nothing left to do.
    pub done: bool,
    /// When the record may be forgotten (after the stream's 24 h retention).
    pub expires_at: Timestamp,
}

/// How far below `since` a resume looks for notices that arrived late.
pub const LATE_LOOKBACK: u64 = 100;

/// The notice log: per-owner sequence numbers, the replay log and the delivery records.
pub trait NoticeLog: Send + Sync {
    /// The owner's next sequence number (an atomic counter: never handed out twice).
    fn next_seq(&self, owner: &OwnerId) -> impl Future<Output = Result<u64, RealtimeError>> + Send;
    /// Stores `delivery` under `key` unless a record is there already; returns the record that
    /// is stored afterwards (this one, or the earlier one that won).
    fn claim(
        &self,
        key: &str,
        delivery: &Delivery,
    ) -> impl Future<Output = Result<Delivery, RealtimeError>> + Send;
    /// Updates a delivery record's progress.
    fn record_progress(
        &self,
        key: &str,
        delivered: &std::collections::BTreeSet<String>,
        done: bool,
    ) -> impl Future<Output = Result<(), RealtimeError>> + Send;
    /// Appends a notice to the owner's replay log (writing the same notice again is a no-op).
    fn append(
        &self,
        owner: &OwnerId,
        notice: &crate::domain::Notice,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<(), RealtimeError>> + Send;
    /// The first `limit` of the owner's stored notices with `seq > after`, and (first, not
    /// counted against `limit`) the late ones:
    /// numbered below `after` (by at most [`LATE_LOOKBACK`]) but stored after notice `after` was,
    /// i.e. numbered before another and arriving after it (two stream shards of one owner). In
    /// `seq` order, without those expired at `now`. A client dedupes by (image, seq), so a late
    /// one it did see live is harmless. When more may follow, [`Replay::next`] is the `after` of
    /// the next page.
    fn since(
        &self,
        owner: &OwnerId,
        after: u64,
        now: Timestamp,
        limit: usize,
    ) -> impl Future<Output = Result<Replay, RealtimeError>> + Send;
}

/// One page of an owner's replay log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The notices, in `seq` order (at most the page's limit).
    pub notices: Vec<crate::domain::Notice>,
    /// When more notices may follow: where the next page starts (the page's last seq, or past
    /// the expired rows it skipped), always above the page's `after`.
    pub next: Option<u64>,
}

/// What became of one message to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostOutcome {
    /// API Gateway accepted it for the connection.
    Delivered,
    /// The connection no longer exists (`410 Gone`): forget it.
    Gone,
}

/// Sends frames to WebSocket connections (API Gateway Management `PostToConnection`).
pub trait ConnectionPoster: Send + Sync {
    /// Sends one text frame.
    fn post(
        &self,
        connection_id: &str,
        payload: &[u8],
    ) -> impl Future<Output = Result<PostOutcome, RealtimeError>> + Send;
}

// ----------------------------------------------------------------------------- operations

/// How many messages a queue holds, by where they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueDepth {
    /// Ready to be received (`ApproximateNumberOfMessages`).
    pub visible: u64,
    /// Received and not yet deleted (`ApproximateNumberOfMessagesNotVisible`).
    pub in_flight: u64,
    /// Sent with a delay that has not passed (`ApproximateNumberOfMessagesDelayed`).
    pub delayed: u64,
}

impl QueueDepth {
    /// Every message the queue holds.
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

/// A message received from a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// SQS message id.
    pub message_id: String,
    /// Receipt handle, to delete or release it.
    pub receipt_handle: String,
    /// The body as it was sent to the source queue.
    pub body: String,
}

/// What operators do with the processing queues and their dead-letter queues.
pub trait QueueAdmin: Send + Sync {
    /// The depth of the stage's queue (`dead_letters`: of its DLQ).
    fn depth(
        &self,
        stage: Stage,
        dead_letters: bool,
    ) -> impl Future<Output = Result<QueueDepth, QueueError>> + Send;
    /// Receives up to `max` (1-10) messages from the stage's DLQ, hidden from other receivers
    /// for `hide_for`. A long poll: waits up to `wait` (whole seconds, at most 20) for a message
    /// when none is ready, and looks at the whole queue (an SQS short poll, `wait` zero, samples
    /// some of its servers and may answer empty while messages are there). Only an empty answer
    /// to a wait of at least a second means the DLQ has nothing visible.
    fn receive_dead_letters(
        &self,
        stage: Stage,
        max: u32,
        hide_for: Duration,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, QueueError>> + Send;
    /// Deletes a received DLQ message.
    fn delete_dead_letter(
        &self,
        stage: Stage,
        receipt_handle: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// Makes a received DLQ message visible again after `after` (it stays in the DLQ).
    fn release_dead_letter(
        &self,
        stage: Stage,
        receipt_handle: &str,
        after: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The images table's sparse, write-sharded `by_status_v2` index (`status_key`, `updated_at`;
/// see [`crate::status_index`]): counts and pages of the `pending`, `processing` and `failed`
/// rows without a table scan. Completed rows are not in it: their count is the completed
/// counter ([`ThroughputLog::completed_total`]) and a page of them is empty.
pub trait StatusIndex: Send + Sync {
    /// How many images have `status` (COUNT queries over its shards, which hold only the rows
    /// in flight or failed); 0 for `completed`.
    fn count_by_status(
        &self,
        status: crate::domain::Status,
    ) -> impl Future<Output = Result<u64, RepoError>> + Send;
    /// One page of the images with `status`, by (`updated_at`, `image_id`) merged over the
    /// shards (oldest first when `oldest_first`); `cursor` is the previous page's `next`, and
    /// resumes every shard where the previous page stopped taking from it.
    fn page_by_status(
        &self,
        status: crate::domain::Status,
        oldest_first: bool,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<ImageRecord>, RepoError>> + Send;
}

/// What became of an image, for the per-minute throughput counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It reached `completed`.
    Processed,
    /// It reached `failed`.
    Failed,
}

/// The processed / failed counts of one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MinuteCount {
    /// The minute's start.
    pub minute: Timestamp,
    /// Images that reached `completed` in it.
    pub processed: u64,
    /// Images that reached `failed` in it.
    pub failed: u64,
}

/// Per-minute throughput counters (in `CONTROL_TABLE`, `throughput#{minute}#{shard}`, with a TTL):
/// incremented atomically by the `notify` stream consumer, read 60 at a time by the admin view,
/// so the chart needs no scan. Also the completed total (`completed#{n}`, sharded, kept), the
/// admin view's count of completed images, which the status index no longer holds.
pub trait ThroughputLog: Send + Sync {
    /// Adds one `outcome` to the minute of `at`; a `Processed` one also to the completed total.
    /// The caller counts each image once (notify: only when it wins the notice's delivery
    /// record, so a redelivered stream record does not count again).
    fn count(
        &self,
        at: Timestamp,
        outcome: Outcome,
    ) -> impl Future<Output = Result<(), RepoError>> + Send;
    /// The `minutes` whole minutes ending with the one of `now`, oldest first; minutes without
    /// counts are zero.
    fn recent(
        &self,
        now: Timestamp,
        minutes: u32,
    ) -> impl Future<Output = Result<Vec<MinuteCount>, RepoError>> + Send;
    /// Images counted `Processed` since the counter started, plus its seed (the completed rows
    /// that existed before, set by the backfill migration).
    fn completed_total(&self) -> impl Future<Output = Result<u64, RepoError>> + Send;
}

/// An object under `originals/`, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedOriginal {
    /// Its key (not yet checked to be one Safelight made).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The bucket as the migration walks it.
pub trait OriginalsSource: Send + Sync {
    /// Up to `limit` keys under `originals/`, in key order, after `start_after`. `next` is the
    /// last key when more may follow.
    fn list_originals(
        &self,
        start_after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<ListedOriginal>, StoreError>> + Send;
    /// The first `n` bytes of an object (enough for its magic bytes and header); `None` when it
    /// is gone.
    fn head_bytes(
        &self,
        key: &ObjectKey,
        n: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;
}

/// A row as the migration finds it: in the current model, or written by an older system
/// without the status fields (or some of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredRow {
    /// A complete row of the current model.
    Current(Box<ImageRecord>),
    /// A row that cannot be read as one: what it does carry.
    Legacy(LegacyRow),
}

/// The images table as the migration reads and repairs it.
pub trait BackfillRows: Send + Sync {
    /// Reads a row in whatever shape it is.
    fn read_row(
        &self,
        id: ImageId,
    ) -> impl Future<Output = Result<Option<StoredRow>, RepoError>> + Send;
    /// Replaces a legacy row (one without `version`) by `record`; `Conflict` if the row is gone
    /// or has been written in the current model meanwhile.
    fn replace_legacy(
        &self,
        record: &ImageRecord,
    ) -> impl Future<Output = Result<(), RepoError>> + Send;
    /// One page of the rows with `status` that lack `by_status_v2`'s `status_key` (written
    /// before the index existed), read from the old `by_status` index; `cursor` is the previous
    /// page's `next`. Removed with `by_status` in the release after.
    fn page_unindexed(
        &self,
        status: crate::domain::Status,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<ImageRecord>, RepoError>> + Send;
    /// Gives the row its `status_key` (a conditional write on its `version` and on the key's
    /// absence); `false` when the row changed meanwhile (its writer put the key) or has it.
    fn index_row(
        &self,
        record: &ImageRecord,
    ) -> impl Future<Output = Result<bool, RepoError>> + Send;
    /// How many rows are completed (COUNT queries on the old `by_status` index: the completed
    /// total's seed, computed once).
    fn count_completed(&self) -> impl Future<Output = Result<u64, RepoError>> + Send;
}

/// An owner's index of the exact bytes they uploaded: a SHA-256 digest -> the image made of
/// them. A claim is a conditional write, so two uploads of the same bytes, however close, cannot
/// both create an image.
pub trait DigestIndex: Send + Sync {
    /// Claims `sha256` (lowercase hex) of `owner` for `image`: `None` when the claim is made,
    /// else the image that holds it.
    fn claim(
        &self,
        owner: &OwnerId,
        sha256: &str,
        image: ImageId,
    ) -> impl Future<Output = Result<Option<ImageId>, RepoError>> + Send;
    /// Moves the claim from `from` (an image that will never show these bytes: expired,
    /// rejected, failed or gone) to `to`; `false` when the claim no longer names `from` (another
    /// upload moved it first).
    fn reclaim(
        &self,
        owner: &OwnerId,
        sha256: &str,
        from: ImageId,
        to: ImageId,
    ) -> impl Future<Output = Result<bool, RepoError>> + Send;
}

/// Run-once markers of migrations in `CONTROL_TABLE` (`migration#{name}`), written only with
/// conditional puts on their `version`.
pub trait MarkerStore: Send + Sync {
    /// The marker and its version (0 when absent).
    fn load_marker(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<(Marker, u64)>, RepoError>> + Send;
    /// Writes the marker if it still has `expected_version` (0: if absent); `Conflict` otherwise.
    fn save_marker(
        &self,
        name: &str,
        marker: &Marker,
        expected_version: u64,
    ) -> impl Future<Output = Result<(), RepoError>> + Send;
    /// The completed total's counted part (the sum of its shards), or `None` once it has its
    /// seed.
    fn completed_counted(&self) -> impl Future<Output = Result<Option<u64>, RepoError>> + Send;
    /// Seeds the completed total, once (a conditional put): `seed` is added to the counted part
    /// (the completed rows minus those already counted; negative when rows were removed); `false`
    /// when a concurrent run seeded it first.
    fn seed_completed(&self, seed: i64) -> impl Future<Output = Result<bool, RepoError>> + Send;
}

// ----------------------------------------------------------------------------- fairness

/// Per-owner request counters, one per fixed window (`CONTROL_TABLE`, `rate#upload#{owner}#{window}`).
pub trait RateCounter: Send + Sync {
    /// Counts one request of `owner` in the window starting at `window_start` (of length
    /// `window`) unless `limit` are counted there already: `true` when counted, `false` when the
    /// window is full (nothing is written then). One conditional write, no read.
    fn take(
        &self,
        owner: &OwnerId,
        window_start: Timestamp,
        window: Duration,
        limit: u32,
    ) -> impl Future<Output = Result<bool, RepoError>> + Send;
}

/// An owner's uploads whose bytes have not arrived (the images table's `by_owner` index).
pub trait AwaitingUploads: Send + Sync {
    /// When each of the owner's rows created after `after` and still `awaiting_upload` was
    /// created, oldest first. Read from an eventually consistent index: an upload created a
    /// moment ago may be missing.
    fn awaiting_since(
        &self,
        owner: &OwnerId,
        after: Timestamp,
    ) -> impl Future<Output = Result<Vec<Timestamp>, RepoError>> + Send;
}
