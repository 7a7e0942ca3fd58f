//! Live notices: the connections table, the notice log and the WebSocket management API.

use std::collections::BTreeSet;
use std::future::Future;

use super::BoxError;
use crate::domain::{Notice, OwnerId, Timestamp};

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
    /// Reads the connection `id` unless it is absent or expired at `now`.
    fn get(
        &self,
        id: &str,
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
    pub notice: Notice,
    /// Connections that got it (or turned out to be gone).
    pub delivered: BTreeSet<String>,
    /// Every connection of the owner was served: nothing left to do.
    pub done: bool,
    /// When the record may be forgotten (after the stream's 24 h retention).
    pub expires_at: Timestamp,
}

/// What a delivery record has reached (see [`NoticeLog::record_progress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress<'a> {
    /// Connections that got the notice (or turned out to be gone).
    pub delivered: &'a BTreeSet<String>,
    /// Every connection of the owner was served.
    pub done: bool,
}

/// A notice to keep in its owner's replay log (see [`NoticeLog::append`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEntry<'a> {
    /// Whose log.
    pub owner: &'a OwnerId,
    /// The notice, numbered.
    pub notice: &'a Notice,
    /// When it may be forgotten.
    pub expires_at: Timestamp,
}

/// Which page of an owner's replay log (see [`NoticeLog::since`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayQuery<'a> {
    /// Whose log.
    pub owner: &'a OwnerId,
    /// The last seq the client has: the page starts after it.
    pub after: u64,
    /// The time now: notices expired at it are left out.
    pub now: Timestamp,
    /// At most how many notices numbered after `after`.
    pub limit: usize,
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
        progress: &Progress<'_>,
    ) -> impl Future<Output = Result<(), RealtimeError>> + Send;
    /// Appends a notice to its owner's replay log (writing the same notice again is a no-op).
    fn append(
        &self,
        entry: &LogEntry<'_>,
    ) -> impl Future<Output = Result<(), RealtimeError>> + Send;
    /// The first `limit` of the owner's stored notices with `seq > after` (see
    /// [`ReplayQuery`]), and (first, not counted against `limit`) the late ones:
    /// numbered below `after` (by at most [`LATE_LOOKBACK`]) but stored after notice `after` was,
    /// i.e. numbered before another and arriving after it (two stream shards of one owner). In
    /// `seq` order, without those expired at `now`. A client dedupes by (image, seq), so a late
    /// one it did see live is harmless. When more may follow, [`Replay::next`] is the `after` of
    /// the next page.
    fn since(
        &self,
        query: &ReplayQuery<'_>,
    ) -> impl Future<Output = Result<Replay, RealtimeError>> + Send;
}

/// One page of an owner's replay log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The notices, in `seq` order (at most the page's limit).
    pub notices: Vec<Notice>,
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
