//! The bucket: objects, presigned uploads and download links.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use super::BoxError;
use crate::domain::{LinkWindow, ObjectKey, Timestamp};

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

/// One object: its current version, or the given one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectRef<'a> {
    /// The object's key.
    pub key: &'a ObjectKey,
    /// The version (`None`: the current one).
    pub version: Option<&'a str>,
}

impl<'a> ObjectRef<'a> {
    /// The object's current version.
    pub fn current(key: &'a ObjectKey) -> Self {
        ObjectRef { key, version: None }
    }
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
        object: ObjectRef<'_>,
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
    /// A GET URL for `object` (of the given version when there is one), signed for `window`:
    /// the same URL for every call within the window (see [`LinkWindow`]).
    fn link(
        &self,
        object: ObjectRef<'_>,
        window: LinkWindow,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}
