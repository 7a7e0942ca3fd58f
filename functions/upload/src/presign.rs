//! The presigned path: a JSON request answered with a presigned PUT and POST, the row written
//! `awaiting_upload`.

use std::time::Duration;

use axum::response::Response;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use safelight::aws::http;
use safelight::limits;
use safelight::ports::{
    AwaitingUploads, DigestIndex, ImageRepository, ObjectStore, UploadConstraints,
};
use safelight::{
    ApiError, ContentType, Identity, ImageId, ImageRecord, NewImage, ObjectKey, Timestamp,
    UploadState,
};

use crate::answer::{status_url, Duplicate, PresignedUpload};
use crate::dedupe::{Declared, Known};
use crate::{clean_filename, repo_failed, storage_failed, Upload, UploadRequest};

/// The largest JSON request body accepted.
const MAX_JSON_BYTES: usize = 16 * 1024;

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
    S: ObjectStore,
    R: ImageRepository + AwaitingUploads,
    D: DigestIndex,
{
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

    pub(crate) async fn presign(
        &self,
        identity: &Identity,
        body: &[u8],
    ) -> Result<Response, ApiError> {
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
}
