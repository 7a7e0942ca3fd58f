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

pub mod dedupe;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use dedupe::{Declared, Known};
use safelight::aws::http::{self, Query};
use safelight::config::MAX_DIRECT_UPLOAD_BYTES;
use safelight::limits::{self, OwnerLimits};
use safelight::ports::{
    AwaitingUploads, DigestIndex, ImageRepository, ObjectStore, PresignedPost, PresignedRequest,
    RateCounter, UploadConstraints,
};
use safelight::{
    ApiError, ContentType, Identity, ImageId, ImageRecord, NewImage, ObjectKey, Status, Timestamp,
    UploadState,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The largest JSON request body accepted.
const MAX_JSON_BYTES: usize = 16 * 1024;
/// The longest file name kept for display.
const MAX_FILENAME_CHARS: usize = 255;

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

#[derive(Debug, Serialize)]
struct PresignedUpload {
    image_id: ImageId,
    upload: PutForm,
    upload_post: PostForm,
    status_url: String,
}

#[derive(Debug, Serialize)]
struct PutForm {
    method: String,
    url: String,
    headers: std::collections::BTreeMap<String, String>,
    expires_at: Timestamp,
}

#[derive(Debug, Serialize)]
struct PostForm {
    method: &'static str,
    url: String,
    fields: std::collections::BTreeMap<String, String>,
    expires_at: Timestamp,
}

/// The answer to an upload of bytes the owner already has an image of.
#[derive(Debug, Serialize)]
struct Duplicate {
    image_id: ImageId,
    duplicate_of: ImageId,
    status: Status,
    status_url: String,
}

impl Duplicate {
    fn of(row: &ImageRecord) -> Self {
        tracing::info!(image_id = %row.image_id, "the same bytes again: answered with the existing image");
        Duplicate {
            image_id: row.image_id,
            duplicate_of: row.image_id,
            status: row.processing_status,
            status_url: status_url(row.image_id),
        }
    }
}

#[derive(Debug, Serialize)]
struct Accepted {
    image_id: ImageId,
    status: Status,
    status_url: String,
}

impl From<PresignedRequest> for PutForm {
    fn from(p: PresignedRequest) -> Self {
        PutForm {
            method: p.method,
            url: p.url,
            headers: p.headers,
            expires_at: p.expires_at,
        }
    }
}

impl From<PresignedPost> for PostForm {
    fn from(p: PresignedPost) -> Self {
        PostForm {
            method: "POST",
            url: p.url,
            fields: p.fields,
            expires_at: p.expires_at,
        }
    }
}

fn status_url(id: ImageId) -> String {
    format!("/api/images/{id}/processing-status")
}

/// Keeps the last path segment, drops control characters and Unicode format characters (bidi
/// overrides and isolates, zero-width characters, the BOM, soft hyphen: invisible characters that
/// make `invoice\u{202E}fdp.exe` display as `invoiceexe.pdf`), trims, and bounds the length.
pub fn clean_filename(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_format_char(*c))
        .take(MAX_FILENAME_CHARS)
        .collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty() && cleaned != "." && cleaned != "..").then(|| cleaned.to_owned())
}

/// Unicode's format characters (general category Cf) that can occur in a file name: invisible,
/// and some reorder or hide what is displayed around them.
fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{FEFF}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0001}' | '\u{E0020}'..='\u{E007F}'
    )
}

/// Parses a declared hex SHA-256 into the base64 form S3's checksum header takes.
fn sha256_base64(hex_digest: &str) -> Result<String, ApiError> {
    let bytes = hex::decode(hex_digest.trim())
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| {
            ApiError::bad_request("bad_sha256", "sha256 must be 64 hexadecimal characters")
        })?;
    Ok(B64.encode(bytes))
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

    /// 429 when the owner already has the most uploads awaiting their bytes.
    async fn check_awaiting(&self, identity: &Identity) -> Result<(), ApiError> {
        let now = Timestamp::now();
        let lifetime = self.limits.presign_expires;
        let awaiting = self
            .images
            .awaiting_since(&identity.owner, limits::awaiting_horizon(now, lifetime))
            .await
            .map_err(repo_failed)?;
        match limits::awaiting_refusal(
            &awaiting,
            self.limits.owner.max_awaiting_uploads,
            lifetime,
            now,
        ) {
            None => Ok(()),
            Some(refusal) => {
                tracing::info!(owner = %identity.owner, awaiting = awaiting.len(), "upload refused: uploads awaiting their bytes");
                Err(ApiError::over_limit(refusal))
            }
        }
    }

    async fn presign(&self, identity: &Identity, body: &[u8]) -> Result<Response, ApiError> {
        if body.is_empty() {
            return Err(ApiError::bad_request(
                "empty_body",
                "the request body is empty",
            ));
        }
        if body.len() > MAX_JSON_BYTES {
            return Err(ApiError::new(
                413,
                "too_large",
                "the JSON request is too large",
            ));
        }
        let req: UploadRequest = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request("bad_json", format!("invalid upload request: {e}"))
        })?;
        let content_type: ContentType =
            req.content_type
                .parse()
                .map_err(|e: safelight::UnsupportedContentType| {
                    ApiError::new(415, "unsupported_type", e.to_string())
                })?;
        if req.size == 0 {
            return Err(ApiError::bad_request(
                "empty_file",
                "size must be at least 1 byte",
            ));
        }
        if req.size > self.limits.max_upload_bytes {
            return Err(ApiError::new(
                413,
                "too_large",
                format!(
                    "size {} exceeds the limit of {} bytes",
                    req.size, self.limits.max_upload_bytes
                ),
            ));
        }
        let filename = clean_filename(&req.filename)
            .ok_or_else(|| ApiError::bad_request("bad_filename", "filename must name a file"))?;
        let checksum = req.sha256.as_deref().map(sha256_base64).transpose()?;
        let digest = req.sha256.map(|s| s.trim().to_ascii_lowercase());
        self.check_awaiting(identity).await?;

        let image_id = ImageId::new();
        safelight::aws::telemetry::tag_image(image_id);
        let key = ObjectKey::original(&identity.owner, image_id);
        let constraints = UploadConstraints {
            content_type: content_type.as_str().to_owned(),
            content_length: req.size,
            sha256_base64: checksum,
        };
        let expires = self.limits.presign_expires;
        let record = ImageRecord::new(
            NewImage {
                image_id,
                owner_id: identity.owner.clone(),
                filename: Some(filename),
                content_type,
                byte_size: req.size,
                sha256: digest.clone(),
                upload_state: UploadState::AwaitingUpload,
            },
            Timestamp::now(),
        );
        // Signed before anything is written: a signing failure leaves nothing.
        let answer = self.links(image_id, &key, &constraints, expires).await?;
        self.images.create(&record).await.map_err(repo_failed)?;
        if let Some(sha256) = digest.as_deref() {
            let declared = Declared {
                sha256,
                content_type: content_type.as_str(),
                size: req.size,
                link_lifetime: expires,
            };
            match self.known(identity, declared, image_id).await? {
                Known::New => {}
                Known::Duplicate(row) => return Ok(http::json(200, &Duplicate::of(&row))),
                Known::Resume(row, left) => {
                    return self
                        .links(row.image_id, &row.original_key, &constraints, left)
                        .await
                }
            }
        }
        tracing::info!(image_id = %image_id, content_type = %content_type, size = req.size, "presigned upload issued");
        Ok(answer)
    }

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

    /// The 201 answer: a presigned PUT and POST for `key`, valid for `expires`.
    async fn links(
        &self,
        image_id: ImageId,
        key: &ObjectKey,
        constraints: &UploadConstraints,
        expires: Duration,
    ) -> Result<Response, ApiError> {
        safelight::aws::telemetry::tag_image(image_id);
        let put = self
            .store
            .presign_put(key, constraints, expires)
            .await
            .map_err(storage_failed)?;
        let post = self
            .store
            .presign_post(key, constraints, expires)
            .await
            .map_err(storage_failed)?;
        Ok(http::json(
            201,
            &PresignedUpload {
                image_id,
                upload: put.into(),
                upload_post: post.into(),
                status_url: status_url(image_id),
            },
        ))
    }

    async fn store_direct(
        &self,
        identity: &Identity,
        content_type: ContentType,
        body: Vec<u8>,
        filename: Option<String>,
    ) -> Result<Response, ApiError> {
        if body.is_empty() {
            return Err(ApiError::bad_request(
                "empty_body",
                "the request body is empty",
            ));
        }
        if body.len() as u64 > MAX_DIRECT_UPLOAD_BYTES {
            return Err(ApiError::new(
                413,
                "too_large",
                format!("direct uploads are limited to {MAX_DIRECT_UPLOAD_BYTES} bytes; request a presigned upload instead"),
            ));
        }
        content_type
            .check_bytes(&body)
            .map_err(|e| ApiError::bad_request("type_mismatch", e.to_string()))?;

        let image_id = ImageId::new();
        safelight::aws::telemetry::tag_image(image_id);
        let sha256 = hex::encode(Sha256::digest(&body));
        let record = ImageRecord::new(
            NewImage {
                image_id,
                owner_id: identity.owner.clone(),
                filename,
                content_type,
                byte_size: body.len() as u64,
                sha256: Some(sha256.clone()),
                upload_state: UploadState::Stored,
            },
            Timestamp::now(),
        );
        // The row goes first: the S3 event that starts processing must find it.
        self.images.create(&record).await.map_err(repo_failed)?;
        let declared = Declared {
            sha256: &sha256,
            content_type: content_type.as_str(),
            size: body.len() as u64,
            link_lifetime: self.limits.presign_expires,
        };
        match self.known(identity, declared, image_id).await? {
            Known::New => {}
            Known::Duplicate(row) => return Ok(http::json(200, &Duplicate::of(&row))),
            // An earlier presigned attempt of these bytes never sent them: here they are. The
            // row stays `awaiting_upload` until processing sees the object, as after a PUT.
            Known::Resume(row, _) => {
                self.store
                    .put(&row.original_key, body, content_type.as_str())
                    .await
                    .map_err(storage_failed)?;
                tracing::info!(image_id = %row.image_id, "original stored for the image awaiting it");
                return Ok(http::json(
                    202,
                    &Accepted {
                        image_id: row.image_id,
                        status: row.processing_status,
                        status_url: status_url(row.image_id),
                    },
                ));
            }
        }
        if let Err(e) = self
            .store
            .put(&record.original_key, body, content_type.as_str())
            .await
        {
            tracing::error!(image_id = %image_id, error = %e, "storing the original failed; removing the row");
            if let Err(undo) = self.images.delete(image_id).await {
                tracing::error!(image_id = %image_id, error = %undo, "could not remove the row of a failed upload");
            }
            return Err(storage_failed(e));
        }
        tracing::info!(image_id = %image_id, content_type = %content_type, size = record.byte_size, "original stored");
        Ok(http::json(
            202,
            &Accepted {
                image_id,
                status: record.processing_status,
                status_url: status_url(image_id),
            },
        ))
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

impl<S, R, D, L> Upload<S, R, D, L> {
    /// The object store port (tests inspect it).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The repository port (tests inspect it).
    pub fn images(&self) -> &R {
        &self.images
    }

    /// The digest index port (tests inspect it).
    pub fn digests(&self) -> &D {
        &self.digests
    }

    /// The request counters (tests inspect them).
    pub fn rates(&self) -> &L {
        &self.rates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_overrides_and_invisible_characters_are_stripped_from_file_names() {
        assert_eq!(
            clean_filename("invoice\u{202E}fdp.exe").as_deref(),
            Some("invoicefdp.exe")
        );
        assert_eq!(
            clean_filename("\u{2066}a\u{200B}b\u{FEFF}.jpg\u{2069}").as_deref(),
            Some("ab.jpg")
        );
        assert_eq!(
            clean_filename("\u{200E}\u{200F}"),
            None,
            "nothing visible left"
        );
        assert_eq!(
            clean_filename("café 北京.jpg").as_deref(),
            Some("café 北京.jpg")
        );
    }
}
