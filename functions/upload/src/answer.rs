//! The JSON bodies the upload route answers with.

use safelight::ports::{PresignedPost, PresignedRequest};
use safelight::{ImageId, ImageRecord, Status, Timestamp};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub(crate) struct PresignedUpload {
    pub(crate) image_id: ImageId,
    pub(crate) upload: PutForm,
    pub(crate) upload_post: PostForm,
    pub(crate) status_url: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct PutForm {
    method: String,
    url: String,
    headers: std::collections::BTreeMap<String, String>,
    expires_at: Timestamp,
}

#[derive(Debug, Serialize)]
pub(crate) struct PostForm {
    method: &'static str,
    url: String,
    fields: std::collections::BTreeMap<String, String>,
    expires_at: Timestamp,
}

/// The answer to an upload of bytes the owner already has an image of.
#[derive(Debug, Serialize)]
pub(crate) struct Duplicate {
    image_id: ImageId,
    duplicate_of: ImageId,
    status: Status,
    status_url: String,
}

impl Duplicate {
    pub(crate) fn of(row: &ImageRecord) -> Self {
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
pub(crate) struct Accepted {
    image_id: ImageId,
    status: Status,
    status_url: String,
}

impl Accepted {
    pub(crate) fn of(row: &ImageRecord) -> Self {
        Accepted {
            image_id: row.image_id,
            status: row.processing_status,
            status_url: status_url(row.image_id),
        }
    }
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

pub(crate) fn status_url(id: ImageId) -> String {
    format!("/api/images/{id}/processing-status")
}
