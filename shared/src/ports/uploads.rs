//! What the upload function asks before it creates an image: the owner's digests, request
//! counters and uploads still awaiting their bytes.

use std::future::Future;
use std::time::Duration;

use super::RepoError;
use crate::domain::{ImageId, OwnerId, Timestamp};

/// A claim of an owner's digest for an image (see [`DigestIndex`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestClaim<'a> {
    /// Whose bytes.
    pub owner: &'a OwnerId,
    /// Their SHA-256, lowercase hex.
    pub sha256: &'a str,
    /// The image made of them.
    pub image: ImageId,
}

/// An owner's index of the exact bytes they uploaded: a SHA-256 digest -> the image made of
/// them. A claim is a conditional write, so two uploads of the same bytes, however close, cannot
/// both create an image.
pub trait DigestIndex: Send + Sync {
    /// Makes `claim`: `None` when it is made, else the image that holds the digest.
    fn claim(
        &self,
        claim: &DigestClaim<'_>,
    ) -> impl Future<Output = Result<Option<ImageId>, RepoError>> + Send;
    /// Moves the digest's claim from `from` (an image that will never show these bytes:
    /// expired, rejected, failed or gone) to `claim.image`; `false` when the claim no longer
    /// names `from` (another upload moved it first).
    fn reclaim(
        &self,
        claim: &DigestClaim<'_>,
        from: ImageId,
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
