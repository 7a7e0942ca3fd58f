//! The owner's view of their images:
//! `GET /api/images` (own images, newest first, paginated, each with its derivatives' URLs),
//! `GET /api/images/{id}` (the row and download URLs), `GET /api/images/{id}/processing-status` (the 7 status fields and the
//! derivatives), `POST /api/images/{id}/retry-processing` (failed -> re-enqueued, 409 otherwise; the
//! operation is [`safelight::ops::retry::retry_image`]).
//!
//! Someone else's image answers 404, exactly like a missing one, so existence is not revealed.
//!
//! Download URLs are signed for the current link window (see [`safelight::LinkWindow`]): every
//! answer within one window carries the same URL for the same file, so browsers and the CDN
//! serve a file they have seen from their cache, and each URL lives at least one more window.

use std::collections::BTreeMap;
use std::time::Duration;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use safelight::aws::http::{self, Query};
use safelight::aws::telemetry;
use safelight::ops::retry::{retry_image, RetryError};
use safelight::ports::{Downloads, ImageRepository, JobQueue, ObjectRef, PageRequest, RepoError};
use safelight::{
    ApiError, ContentType, Derivative, ErrorKind, Identity, ImageId, ImageRecord, LinkWindow,
    Status, StatusSnapshot, Timestamp, UploadState,
};
use serde::Serialize;

/// The default link window: URLs stay the same for an hour and live one to two hours.
pub const DEFAULT_LINK_WINDOW: Duration = Duration::from_secs(3600);
/// Default and largest page size.
const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

/// The handler with its ports.
#[derive(Debug)]
pub struct Images<D, R, Q> {
    links: D,
    images: R,
    queue: Q,
    link_window: Duration,
}

#[derive(Debug, Serialize)]
struct ProcessingStatus<'a> {
    image_id: ImageId,
    upload_state: UploadState,
    #[serde(flatten)]
    status: StatusSnapshot,
    error_kind: Option<ErrorKind>,
    thumbnails: &'a BTreeMap<String, Derivative>,
    variants: &'a BTreeMap<String, Derivative>,
    placeholder: Option<&'a str>,
    updated_at: Timestamp,
}

#[derive(Debug, Serialize)]
struct DerivativeView {
    url: String,
    width: u32,
    height: u32,
    bytes: u64,
    format: String,
}

#[derive(Debug, Serialize)]
struct ImageView {
    image_id: ImageId,
    filename: Option<String>,
    content_type: ContentType,
    byte_size: u64,
    width: Option<u32>,
    height: Option<u32>,
    upload_state: UploadState,
    #[serde(flatten)]
    status: StatusSnapshot,
    error_kind: Option<ErrorKind>,
    placeholder: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
    original_url: Option<String>,
    #[serde(flatten)]
    derivatives: Derivatives,
}

#[derive(Debug, Serialize)]
struct ImageSummary {
    image_id: ImageId,
    filename: Option<String>,
    content_type: ContentType,
    processing_status: Status,
    placeholder: Option<String>,
    created_at: Timestamp,
    thumbnail_url: Option<String>,
    #[serde(flatten)]
    derivatives: Derivatives,
}

/// An image's derivatives with their links, by name: the tail of both an image's view and its
/// summary (flattened, so the JSON has `thumbnails` and `variants` in place).
#[derive(Debug, Serialize)]
struct Derivatives {
    thumbnails: BTreeMap<String, DerivativeView>,
    variants: BTreeMap<String, DerivativeView>,
}

#[derive(Debug, Serialize)]
struct ImageList {
    items: Vec<ImageSummary>,
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct RetryAccepted {
    image_id: ImageId,
    processing_status: Status,
    requeued: Vec<safelight::Stage>,
}

/// The `{id}` of an image route. Putting it on the request span ([`telemetry::tag_image`]) when
/// it is an image id; a segment that is not text names no one's image.
struct IdSegment(String);

impl<S: Send + Sync> FromRequestParts<S> for IdSegment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("image"))?;
        if let Ok(id) = id.parse::<ImageId>() {
            telemetry::tag_image(id);
        }
        Ok(IdSegment(id))
    }
}

impl<D, R, Q> Images<D, R, Q>
where
    D: Downloads + 'static,
    R: ImageRepository + 'static,
    Q: JobQueue + 'static,
{
    /// A handler over the given ports, signing download links for `link_window`.
    pub fn new(links: D, images: R, queue: Q, link_window: Duration) -> Self {
        Images {
            links,
            images,
            queue,
            link_window,
        }
    }

    /// The link window of this moment.
    fn window(&self) -> LinkWindow {
        LinkWindow::containing(Timestamp::now(), self.link_window)
    }

    /// The routes, answered by this handler. Every route needs the caller's identity (401
    /// without); a request that matches none is 404.
    pub fn router(self: Arc<Self>) -> Router {
        let routes = Router::new()
            .route("/api/images", get(Self::list))
            .route("/api/images/{id}", get(Self::get))
            .route("/api/images/{id}/processing-status", get(Self::status))
            .route("/api/images/{id}/retry-processing", post(Self::retry));
        http::or_else(routes, http::no_route).with_state(self)
    }

    /// The caller's own image, or 404.
    async fn own(&self, identity: &Identity, id: &str) -> Result<ImageRecord, ApiError> {
        let id: ImageId = id.parse().map_err(|_| ApiError::not_found("image"))?;
        match self.images.get(id).await.map_err(repo_failed)? {
            Some(record) if record.is_visible_to(&identity.owner) => Ok(record),
            _ => Err(ApiError::not_found("image")),
        }
    }

    async fn status(
        State(this): State<Arc<Self>>,
        identity: Identity,
        IdSegment(id): IdSegment,
    ) -> Result<Response, ApiError> {
        let r = this.own(&identity, &id).await?;
        Ok(http::json(
            200,
            &ProcessingStatus {
                image_id: r.image_id,
                upload_state: r.upload_state,
                status: StatusSnapshot::from(&r),
                error_kind: r.error_kind,
                thumbnails: &r.thumbnails,
                variants: &r.variants,
                placeholder: r.placeholder.as_deref(),
                updated_at: r.updated_at,
            },
        ))
    }

    /// The row's derivatives, each with its link for `window`.
    async fn derivatives(
        &self,
        r: &ImageRecord,
        window: LinkWindow,
    ) -> Result<Derivatives, ApiError> {
        Ok(Derivatives {
            thumbnails: self.urls(&r.thumbnails, window).await?,
            variants: self.urls(&r.variants, window).await?,
        })
    }

    async fn urls(
        &self,
        map: &BTreeMap<String, Derivative>,
        window: LinkWindow,
    ) -> Result<BTreeMap<String, DerivativeView>, ApiError> {
        let mut out = BTreeMap::new();
        for (name, d) in map {
            let url = self
                .links
                .link(ObjectRef::current(&d.key), window)
                .await
                .map_err(store_failed)?;
            out.insert(
                name.clone(),
                DerivativeView {
                    url,
                    width: d.width,
                    height: d.height,
                    bytes: d.bytes,
                    format: d.format.clone(),
                },
            );
        }
        Ok(out)
    }

    async fn get(
        State(this): State<Arc<Self>>,
        identity: Identity,
        IdSegment(id): IdSegment,
    ) -> Result<Response, ApiError> {
        let r = this.own(&identity, &id).await?;
        let window = this.window();
        let original_url = match r.upload_state {
            UploadState::Stored => {
                let original = ObjectRef {
                    key: &r.original_key,
                    version: r.original_version.as_deref(),
                };
                Some(
                    this.links
                        .link(original, window)
                        .await
                        .map_err(store_failed)?,
                )
            }
            UploadState::AwaitingUpload | UploadState::Rejected | UploadState::Expired => None,
        };
        let view = ImageView {
            image_id: r.image_id,
            filename: r.filename.clone(),
            content_type: r.content_type,
            byte_size: r.byte_size,
            width: r.width,
            height: r.height,
            upload_state: r.upload_state,
            status: StatusSnapshot::from(&r),
            error_kind: r.error_kind,
            placeholder: r.placeholder.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            original_url,
            derivatives: this.derivatives(&r, window).await?,
        };
        Ok(http::json(200, &view))
    }

    async fn list(
        State(this): State<Arc<Self>>,
        identity: Identity,
        query: Query,
    ) -> Result<Response, ApiError> {
        let limit = match query.first("limit") {
            None => DEFAULT_PAGE,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "bad_limit",
                        format!("limit must be between 1 and {MAX_PAGE}"),
                    )
                })?,
        };
        let page = this
            .images
            .list_by_owner(PageRequest {
                of: &identity.owner,
                limit,
                cursor: query.first("cursor"),
            })
            .await
            .map_err(|e| match e {
                RepoError::BadCursor => {
                    ApiError::bad_request("bad_cursor", "the cursor is not one this API handed out")
                }
                other => repo_failed(other),
            })?;
        let window = this.window();
        let mut items = Vec::with_capacity(page.items.len());
        for r in page.items {
            let derivatives = this.derivatives(&r, window).await?;
            // The smallest thumbnail is the list's preview.
            let thumbnail_url = r
                .thumbnails
                .iter()
                .min_by_key(|(_, d)| d.width.max(d.height))
                .and_then(|(name, _)| derivatives.thumbnails.get(name))
                .map(|v| v.url.clone());
            items.push(ImageSummary {
                image_id: r.image_id,
                filename: r.filename,
                content_type: r.content_type,
                processing_status: r.processing_status,
                placeholder: r.placeholder,
                created_at: r.created_at,
                thumbnail_url,
                derivatives,
            });
        }
        Ok(http::json(
            200,
            &ImageList {
                items,
                next_cursor: page.next,
            },
        ))
    }

    async fn retry(
        State(this): State<Arc<Self>>,
        identity: Identity,
        IdSegment(id): IdSegment,
    ) -> Result<Response, ApiError> {
        let id: ImageId = id.parse().map_err(|_| ApiError::not_found("image"))?;
        let retried = retry_image(
            &this.images,
            &this.queue,
            &identity.owner,
            id,
            Timestamp::now(),
        )
        .await
        .map_err(|e| match e {
            RetryError::NotFound => ApiError::not_found("image"),
            RetryError::NotFailed(e) => ApiError::conflict("not_failed", e.to_string()),
            RetryError::Busy => ApiError::conflict("busy", e.to_string()),
            RetryError::Repo(e) => repo_failed(e),
            RetryError::Queue(e) => {
                tracing::error!(error = %e, "re-enqueue failed");
                ApiError::unavailable()
            }
        })?;
        Ok(http::json(
            202,
            &RetryAccepted {
                image_id: retried.record.image_id,
                processing_status: retried.record.processing_status,
                requeued: retried.stages,
            },
        ))
    }
}

fn store_failed(e: safelight::ports::StoreError) -> ApiError {
    tracing::error!(error = %e, "object storage call failed");
    ApiError::unavailable()
}

fn repo_failed(e: RepoError) -> ApiError {
    tracing::error!(error = %e, "image table call failed");
    ApiError::unavailable()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_writes_its_derivatives_in_place_after_its_own_fields() {
        let view = |width| DerivativeView {
            url: "u".to_owned(),
            width,
            height: 1,
            bytes: 2,
            format: "webp".to_owned(),
        };
        let summary = ImageSummary {
            image_id: "01J0000000000000000000000A".parse().unwrap(),
            filename: None,
            content_type: ContentType::Png,
            processing_status: Status::Completed,
            placeholder: None,
            created_at: Timestamp::from_unix_millis(0),
            thumbnail_url: Some("u".to_owned()),
            derivatives: Derivatives {
                thumbnails: BTreeMap::from([("150".to_owned(), view(150))]),
                variants: BTreeMap::new(),
            },
        };
        let derivative = r#"{"url":"u","width":150,"height":1,"bytes":2,"format":"webp"}"#;
        assert_eq!(
            serde_json::to_string(&summary).unwrap(),
            format!(
                concat!(
                    r#"{{"image_id":"01J0000000000000000000000A","filename":null,"#,
                    r#""content_type":"image/png","processing_status":"completed","#,
                    r#""placeholder":null,"created_at":"{}","thumbnail_url":"u","#,
                    r#""thumbnails":{{"150":{}}},"variants":{{}}}}"#
                ),
                "1970-01-01T00:00:00.000Z", derivative
            )
        );
    }
}
