//! `POST /api/images/upload`.
//!
//! - `application/json` `{filename, content_type, size, sha256?}`: answers 201 with a presigned
//!   PUT (type, length, checksum and `If-None-Match: *` signed: it creates the original once and
//!   can never replace it) and a presigned POST policy (exact key, type and length), and writes
//!   the row as `awaiting_upload`. The browser uploads straight to S3; the S3 event starts
//!   processing, which also refuses a stored size other than the declared one.
//! - `image/*` body of at most 4 MiB (see `MAX_DIRECT_UPLOAD_BYTES`): the magic bytes must match the declared type; the row is
//!   written (`stored`) and then the original; 202.
//!
//! Every refusal happens before anything is written, so a refused request leaves no row and no
//! object.
//!
//! Fair to every owner (see [`safelight::limits`]): each request of an authenticated owner is
//! counted first, in its owner's one-minute window (one conditional `UpdateItem`, no read); past
//! `UPLOADS_PER_MINUTE` the answer is 429 `rate_limited` with `Retry-After` (what is left of the
//! minute). A presigned request then counts the owner's uploads still awaiting their bytes with
//! a working link (one bounded query of the `by_owner` index); at `MAX_AWAITING_UPLOADS` it is 429
//! `too_many_pending_uploads`. A failure of either check answers 503: a limit is never skipped.
//!
//! Exact duplicates (see [`dedupe`]): when the owner already has an image of the same bytes (the
//! request's `sha256`, or the direct body's digest), the answer is 200 `{image_id, duplicate_of,
//! status, status_url}` and nothing is created or sent; an image still awaiting the same bytes
//! within its link's lifetime gets a new link (201, the same `image_id`).

mod answer;
pub mod dedupe;
mod direct;
mod filename;
mod presign;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use dedupe::{Declared, Known};
use safelight::aws::http::{self, Query};
use safelight::limits::{self, OwnerLimits};
use safelight::ports::{AwaitingUploads, DigestIndex, ImageRepository, ObjectStore, RateCounter};
use safelight::{ApiError, ContentType, Identity, ImageId, Timestamp};
use serde::Deserialize;

pub use filename::clean_filename;

/// Limits the handler enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest original a presigned upload allows.
    pub max_upload_bytes: u64,
    /// Validity of presigned uploads (≤ 15 min).
    pub presign_expires: Duration,
    /// The per-owner limits (upload rate, uploads awaiting their bytes).
    pub owner: OwnerLimits,
}

/// The handler with its ports.
#[derive(Debug)]
pub struct Upload<S, R, D, L> {
    store: S,
    images: R,
    digests: D,
    rates: L,
    limits: Limits,
}

/// The JSON request of the presigned path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The client's file name (display only).
    pub filename: String,
    /// The media type the upload will carry.
    pub content_type: String,
    /// Exact size in bytes.
    pub size: u64,
    /// Optional hex SHA-256 of the file; S3 then verifies it.
    #[serde(default)]
    pub sha256: Option<String>,
}

impl<S, R, D, L> Upload<S, R, D, L>
where
    S: ObjectStore + 'static,
    R: ImageRepository + AwaitingUploads + 'static,
    D: DigestIndex + 'static,
    L: RateCounter + 'static,
{
    /// A handler over the given ports.
    pub fn new(store: S, images: R, digests: D, rates: L, limits: Limits) -> Self {
        Upload {
            store,
            images,
            digests,
            rates,
            limits,
        }
    }

    /// The route, answered by this handler: `POST /api/images/upload`, with the caller's
    /// identity (401 without); any other request is 404.
    pub fn router(self: Arc<Self>) -> Router {
        let routes = Router::new().route("/api/images/upload", post(Self::upload));
        http::or_else(routes, http::no_route).with_state(self)
    }

    async fn upload(
        State(this): State<Arc<Self>>,
        identity: Identity,
        query: Query,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response, ApiError> {
        this.check_rate(&identity).await?;
        let declared = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let essence = declared
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence == "application/json" {
            this.presign(&identity, &body).await
        } else if essence.starts_with("image/") {
            let content_type: ContentType =
                declared
                    .parse()
                    .map_err(|e: safelight::UnsupportedContentType| {
                        ApiError::new(415, "unsupported_type", e.to_string())
                    })?;
            let filename = headers
                .get("x-filename")
                .and_then(|v| v.to_str().ok())
                .or_else(|| query.first("filename"))
                .and_then(clean_filename);
            this.store_direct(&identity, content_type, body.into(), filename)
                .await
        } else if essence.is_empty() {
            Err(ApiError::new(
                415,
                "missing_content_type",
                "send application/json (presigned upload) or an image/* body",
            ))
        } else {
            Err(ApiError::new(
                415,
                "unsupported_type",
                format!("content type {declared:?} is not accepted: send application/json or an image/* body"),
            ))
        }
    }

    /// Counts the request in its owner's window; 429 when the window is full.
    async fn check_rate(&self, identity: &Identity) -> Result<(), ApiError> {
        let now = Timestamp::now();
        let counted = self
            .rates
            .take(
                &identity.owner,
                limits::window_start(now),
                limits::RATE_WINDOW,
                self.limits.owner.uploads_per_minute,
            )
            .await
            .map_err(repo_failed)?;
        if counted {
            return Ok(());
        }
        tracing::info!(owner = %identity.owner, "upload refused: request rate");
        Err(ApiError::over_limit(limits::upload_rate_refusal(now)))
    }
}

fn storage_failed(e: safelight::ports::StoreError) -> ApiError {
    tracing::error!(error = %e, "object storage call failed");
    ApiError::unavailable()
}

fn repo_failed(e: safelight::ports::RepoError) -> ApiError {
    tracing::error!(error = %e, "image table call failed");
    ApiError::unavailable()
}

impl<S, R: ImageRepository, D: DigestIndex, L> Upload<S, R, D, L> {
    /// What the owner's digest index knows about the bytes of the image `fresh`, whose row is
    /// written (so a claim always names a row that exists, or existed). When the bytes belong to
    /// another image, or the index cannot be used, `fresh`'s row is removed again.
    async fn known(
        &self,
        identity: &Identity,
        declared: Declared<'_>,
        fresh: ImageId,
    ) -> Result<Known, ApiError> {
        let known = dedupe::resolve(
            &self.digests,
            &self.images,
            &identity.owner,
            declared,
            fresh,
        )
        .await;
        if matches!(known, Ok(Known::New)) {
            return Ok(Known::New);
        }
        if let Err(e) = self.images.delete(fresh).await {
            tracing::error!(image_id = %fresh, error = %e, "could not remove the row of an upload that made no image; the sweeper expires it");
        }
        known.map_err(|e| {
            tracing::error!(error = %e, "the digest index could not be read or written");
            ApiError::unavailable()
        })
    }
}
