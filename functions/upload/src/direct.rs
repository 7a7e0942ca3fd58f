//! The direct path: an `image/*` body of at most `MAX_DIRECT_UPLOAD_BYTES`, its magic bytes
//! checked, the row written `stored` and then the original.

use axum::response::Response;
use safelight::aws::http;
use safelight::config::MAX_DIRECT_UPLOAD_BYTES;
use safelight::ports::{DigestIndex, ImageRepository, ObjectStore};
use safelight::{
    ApiError, ContentType, Identity, ImageId, ImageRecord, NewImage, Timestamp, UploadState,
};
use sha2::{Digest, Sha256};

use crate::answer::{Accepted, Duplicate};
use crate::dedupe::{Declared, Known};
use crate::{repo_failed, storage_failed, Upload};

impl<S, R, D, L> Upload<S, R, D, L>
where
    S: ObjectStore,
    R: ImageRepository,
    D: DigestIndex,
{
    pub(crate) async fn store_direct(
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
                return Ok(http::json(202, &Accepted::of(&row)));
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
        Ok(http::json(202, &Accepted::of(&record)))
    }
}
