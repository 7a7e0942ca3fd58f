//! The operators' routes, admin only: the token must carry the admin scope (`ADMIN_SCOPE`,
//! default `safelight/admin`, in its `scope` or `scp` claim). API Gateway already refuses a token
//! without it (the routes' `AuthorizationScopes`); the handler checks it again, so a route
//! deployed without that setting stays closed. Anyone else gets 403, no token 401. Groups grant
//! nothing ([`safelight::domain::identity`]).
//!
//! - `GET /api/admin/processing-queue`: counts by status (the `by_status` index, no scan), queue
//!   and DLQ depths, breakers, the oldest pending image, recent failures, per-minute throughput
//!   for the last hour ([`safelight::ops::queue_view`]).
//! - `POST /api/admin/retry-all-failed` `{"dry_run"?, "cursor"?}`: failed images and DLQ messages
//!   back to work, at a bounded rate, in calls the caller follows with `next_cursor`
//!   ([`safelight::ops::retry_all`]).
//! - `POST /api/admin/circuits/{stage}/reset`: closes a breaker by hand, recorded on its row.
//!
//! Every call that changes (or, as a dry run, would change) the processing writes one audit line,
//! `admin action`, with the `action`, the `caller` (the token's `sub`; never the token) and what
//! was done, so an operator's log query answers who retried or reset what, and when.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use safelight::aws::http;
use safelight::ops::circuits::reset_circuit;
use safelight::ops::queue_view::{queue_view, ViewPorts};
use safelight::ops::retry_all::{
    retry_all_failed, RetryAllError, RetryAllRequest, RetryLimits, RetryPorts,
};
use safelight::ports::{
    ControlStore, ImageRepository, JobQueue, QueueAdmin, RepoError, StatusIndex, ThroughputLog,
};
use safelight::{ApiError, Identity, OpsSettings, Stage, Timestamp};

/// The adapters the handler runs on.
#[derive(Debug)]
pub struct AdminPorts<R, Q, A, C, T> {
    /// The images table (rows and the `by_status` index).
    pub images: R,
    /// The processing queues (to enqueue).
    pub queue: Q,
    /// The processing queues and their DLQs (depths, redrive).
    pub dead_letters: A,
    /// The control table's breakers.
    pub control: C,
    /// The throughput counters.
    pub throughput: T,
}

/// The handler.
#[derive(Debug)]
pub struct Admin<R, Q, A, C, T> {
    ports: AdminPorts<R, Q, A, C, T>,
    settings: OpsSettings,
}

/// The caller, once its token carries the admin scope: 401 without a verified identity, 403
/// without the scope.
struct Operator(Identity);

impl<R, Q, A, C, T> FromRequestParts<Arc<Admin<R, Q, A, C, T>>> for Operator
where
    Admin<R, Q, A, C, T>: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        admin: &Arc<Admin<R, Q, A, C, T>>,
    ) -> Result<Self, ApiError> {
        let identity = Identity::from_request_parts(parts, admin).await?;
        let scope = &admin.settings.admin_scope;
        if !identity.has_scope(scope) {
            tracing::warn!(
                caller = %identity.owner,
                "admin route refused: the token lacks the admin scope"
            );
            return Err(ApiError::forbidden(format!(
                "this route is for administrators (the {scope} scope)"
            )));
        }
        Ok(Operator(identity))
    }
}

impl<R, Q, A, C, T> Admin<R, Q, A, C, T>
where
    R: ImageRepository + StatusIndex + 'static,
    Q: JobQueue + 'static,
    A: QueueAdmin + 'static,
    C: ControlStore + 'static,
    T: ThroughputLog + 'static,
{
    /// A handler over the given ports.
    pub fn new(ports: AdminPorts<R, Q, A, C, T>, settings: OpsSettings) -> Self {
        Admin { ports, settings }
    }

    /// The routes, answered by this handler. Every request needs the admin scope (see
    /// [`Operator`]) before anything else, an unknown route included (then 404).
    pub fn router(self: Arc<Self>) -> Router {
        let routes = Router::new()
            .route("/api/admin/processing-queue", get(Self::queue))
            .route("/api/admin/retry-all-failed", post(Self::retry_all))
            .route("/api/admin/circuits/{stage}/reset", post(Self::reset));
        http::or_else(routes, Self::no_route).with_state(self)
    }

    async fn no_route(_operator: Operator) -> ApiError {
        ApiError::not_found("route")
    }

    async fn queue(
        State(this): State<Arc<Self>>,
        _operator: Operator,
    ) -> Result<Response, ApiError> {
        let p = &this.ports;
        let view = queue_view(
            ViewPorts {
                index: &p.images,
                queues: &p.dead_letters,
                control: &p.control,
                throughput: &p.throughput,
            },
            &this.settings.breaker,
            Timestamp::now(),
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "the processing-queue view failed");
            ApiError::unavailable()
        })?;
        Ok(http::json(200, &view))
    }

    async fn retry_all(
        State(this): State<Arc<Self>>,
        Operator(identity): Operator,
        body: Bytes,
    ) -> Result<Response, ApiError> {
        let ask: RetryAllRequest = if body.iter().all(u8::is_ascii_whitespace) {
            RetryAllRequest::default()
        } else {
            // Only an object: serde would also read a struct from a JSON array, and `[]` would
            // then mean "everything by default", a real run.
            let bad = |e: String| {
                ApiError::bad_request(
                    "bad_json",
                    format!("expected {{\"dry_run\"?: bool, \"cursor\"?: string}}: {e}"),
                )
            };
            match serde_json::from_slice::<serde_json::Value>(&body)
                .map_err(|e| bad(e.to_string()))?
            {
                object @ serde_json::Value::Object(_) => {
                    serde_json::from_value(object).map_err(|e| bad(e.to_string()))?
                }
                _ => return Err(bad("the body is not a JSON object".into())),
            }
        };
        let p = &this.ports;
        let report = retry_all_failed(
            RetryPorts {
                images: &p.images,
                queue: &p.queue,
                admin: &p.dead_letters,
            },
            &ask,
            RetryLimits {
                rate_per_sec: this.settings.retry_rate_per_sec,
                budget: this.settings.retry_call_budget,
            },
        )
        .await
        .map_err(|e| match e {
            RetryAllError::BadCursor | RetryAllError::Repo(RepoError::BadCursor) => {
                ApiError::bad_request("bad_cursor", "the cursor is not one this API handed out")
            }
            other => {
                tracing::error!(
                    error = %other,
                    caller = %identity.owner,
                    "retry-all-failed stopped"
                );
                ApiError::unavailable()
            }
        })?;
        tracing::info!(
            action = "retry_all_failed",
            caller = %identity.owner,
            dry_run = report.dry_run,
            images_requeued = report.images_requeued,
            messages_redriven = report.messages_redriven,
            duplicates_removed = report.duplicates_removed,
            skipped = report.skipped,
            done = report.done,
            "admin action"
        );
        Ok(http::json(200, &report))
    }

    async fn reset(
        State(this): State<Arc<Self>>,
        Operator(identity): Operator,
        stage: Result<Path<String>, PathRejection>,
    ) -> Result<Response, ApiError> {
        let stage = match stage.as_ref().map(|Path(s)| s.as_str()) {
            Ok("thumbnail") => Stage::Thumbnail,
            Ok("variant") => Stage::Variant,
            _ => return Err(ApiError::not_found("circuit")),
        };
        let done = reset_circuit(
            &this.ports.control,
            stage,
            identity.owner.as_str(),
            Timestamp::now(),
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, caller = %identity.owner, "circuit reset failed");
            match e {
                RepoError::Conflict => {
                    ApiError::conflict("busy", "the breaker kept changing; try again")
                }
                _ => ApiError::unavailable(),
            }
        })?;
        tracing::info!(
            action = "circuit_reset",
            caller = %identity.owner,
            stage = %done.stage,
            previous_state = ?done.previous_state,
            "admin action"
        );
        Ok(http::json(200, &done))
    }
}
