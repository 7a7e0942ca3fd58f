//! What the upload function asks before it creates an image: the owner's digests, request counters and uploads still awaiting their bytes.

use std::future::Future;
use std::time::Duration;

use super::RepoError;
use crate::domain::{ImageId, OwnerId, Timestamp};

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
