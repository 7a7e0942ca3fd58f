//! The control table: circuit breakers, processing leases and the throughput counters.

use std::future::Future;

use super::RepoError;
use crate::breaker::Breaker;
use crate::domain::{ImageId, Stage, Timestamp};

/// Who takes a processing lease: one receive of one SQS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder<'a> {
    /// The SQS message id (the same for every receive of the message).
    pub message_id: &'a str,
    /// Its `ApproximateReceiveCount` at this receive.
    pub receive: u32,
}

/// Which processing lease: the one of an image at a stage (one item of the control table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseKey {
    /// The stage processing the image.
    pub stage: Stage,
    /// The image.
    pub image: ImageId,
}

/// A request to take a processing lease (see [`ControlStore::acquire_lease`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRequest<'a> {
    /// The lease.
    pub lease: LeaseKey,
    /// The receive that takes it.
    pub holder: Holder<'a>,
    /// Until when it is to be held.
    pub until: Timestamp,
    /// The time now: a lease held until before it has run out.
    pub now: Timestamp,
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

/// A stage's breaker to write over the version it was read at (see
/// [`ControlStore::save_breaker`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerWrite<'a> {
    /// Whose breaker.
    pub stage: Stage,
    /// The breaker to store.
    pub breaker: &'a Breaker,
    /// The version it was read at (0: never written).
    pub expected_version: u64,
}

/// The control table: circuit breakers and processing leases.
pub trait ControlStore: Send + Sync {
    /// The stage's breaker and its version (0 when never written).
    fn load_breaker(
        &self,
        stage: Stage,
    ) -> impl Future<Output = Result<(Breaker, u64), RepoError>> + Send;
    /// Writes `write.breaker` if the stage's breaker still has `write.expected_version`;
    /// `Conflict` otherwise.
    fn save_breaker(
        &self,
        write: BreakerWrite<'_>,
    ) -> impl Future<Output = Result<(), RepoError>> + Send;
    /// Takes the processing lease `request.lease` for `request.holder` until `request.until` if
    /// it is free or its time has run out (`request.now` is past its `until`), counting the takes
    /// since its last release. Every attempt releases its lease when it ends, so finding it run
    /// out under an earlier receive of the same message means that receive's attempt never ended
    /// ([`Lease::Abandoned`]); finding it live under the same message is a duplicate delivery
    /// ([`Lease::Running`]).
    fn acquire_lease(
        &self,
        request: &LeaseRequest<'_>,
    ) -> impl Future<Output = Result<Lease, RepoError>> + Send;
    /// Records on the lease, if `holder` (that very receive) still holds it, that its attempt is
    /// about to run out of the invocation's time (so the next attempt knows it was not a crash).
    fn mark_out_of_time(
        &self,
        lease: LeaseKey,
        holder: &Holder<'_>,
    ) -> impl Future<Output = Result<(), RepoError>> + Send;
    /// Reads the lease without taking it; `None` when there is none.
    fn lease(
        &self,
        lease: LeaseKey,
    ) -> impl Future<Output = Result<Option<LeaseView>, RepoError>> + Send;
    /// Gives the lease up if `holder` (that very receive) still holds it.
    fn release_lease(
        &self,
        lease: LeaseKey,
        holder: &Holder<'_>,
    ) -> impl Future<Output = Result<(), RepoError>> + Send;
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

impl MinuteCount {
    /// The counts of `minutes`, in their order: `count` gives each one's (processed, failed).
    pub fn tally(
        minutes: impl IntoIterator<Item = Timestamp>,
        mut count: impl FnMut(Timestamp) -> (u64, u64),
    ) -> Vec<MinuteCount> {
        minutes
            .into_iter()
            .map(|minute| {
                let (processed, failed) = count(minute);
                MinuteCount {
                    minute,
                    processed,
                    failed,
                }
            })
            .collect()
    }
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
