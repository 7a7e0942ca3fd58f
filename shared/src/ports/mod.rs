//! The ports the domain needs from the outside world, one module per family. Adapters in `aws`
//! implement them for S3, SQS, DynamoDB and API Gateway; `testing` has in-memory fakes for
//! handler tests; `faults` decorates any of them. Everything is re-exported here, so callers name
//! `crate::ports::ObjectStore` whatever file it lives in.

mod control;
mod images;
mod migration;
mod queues;
mod realtime;
mod store;
mod uploads;

pub use control::{
    BreakerWrite, ControlStore, Holder, Lease, LeaseKey, LeaseRequest, LeaseView, MinuteCount,
    Outcome, ThroughputLog,
};
pub use images::{ImageRepository, OwnerPage, RepoError, StatusIndex, StatusPage, Written};
pub use migration::{BackfillRows, ListedOriginal, MarkerStore, OriginalsSource, StoredRow};
pub use queues::{
    DeadLetter, DeadLetterReceive, JobQueue, QueueAdmin, QueueDepth, QueueError, Receipt, Requeue,
};
pub use realtime::{
    Connection, ConnectionPoster, ConnectionRepository, Delivery, LogEntry, NoticeLog, PostOutcome,
    Progress, RealtimeError, Replay, ReplayQuery, LATE_LOOKBACK,
};
pub use store::{
    Downloads, ObjectMeta, ObjectRef, ObjectStore, PresignedPost, PresignedRequest, StoreError,
    StoredObject, UploadConstraints,
};
pub use uploads::{AwaitingUploads, DigestClaim, DigestIndex, RateCounter};

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Opaque cursor for the next page, if there is one.
    pub next: Option<String>,
}

/// Which page of a listing to read: up to `limit` items (at least one) of `of`, starting after
/// `cursor`, the previous page's `next` (`None`: the first page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest<'a, Of> {
    /// What is listed: an owner's rows, the rows with a status.
    pub of: Of,
    /// At most how many items.
    pub limit: u32,
    /// Where the previous page stopped.
    pub cursor: Option<&'a str>,
}
