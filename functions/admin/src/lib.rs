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

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::http::Method;
use safelight::aws::apigw_http;
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

enum Route {
    Queue,
    RetryAll,
    Reset(String),
}

fn route(request: &ApiGatewayV2httpRequest) -> Option<Route> {
    let path = request
        .request_context
        .http
        .path
        .as_deref()
        .or(request.raw_path.as_deref())
        .unwrap_or_default();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = &request.request_context.http.method;
    match (method, segments.as_slice()) {
        (&Method::GET, ["api", "admin", "processing-queue"]) => Some(Route::Queue),
        (&Method::POST, ["api", "admin", "retry-all-failed"]) => Some(Route::RetryAll),
        (&Method::POST, ["api", "admin", "circuits", seg, "reset"]) => Some(Route::Reset(
            apigw_http::path_param(request, "stage")
                .unwrap_or(seg)
                .to_owned(),
        )),
        _ => None,
    }
}

impl<R, Q, A, C, T> Admin<R, Q, A, C, T>
where
    R: ImageRepository + StatusIndex,
    Q: JobQueue,
    A: QueueAdmin,
    C: ControlStore,
    T: ThroughputLog,
{
    /// A handler over the given ports.
    pub fn new(ports: AdminPorts<R, Q, A, C, T>, settings: OpsSettings) -> Self {
        Admin { ports, settings }
    }

    /// Handles one API Gateway request; every outcome is an HTTP response.
    pub async fn handle(&self, request: &ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        let result = async {
            let identity = apigw_http::identity(request)?;
            if !identity.has_scope(&self.settings.admin_scope) {
                tracing::warn!(
                    caller = %identity.owner,
                    "admin route refused: the token lacks the admin scope"
                );
                return Err(ApiError::forbidden(format!(
                    "this route is for administrators (the {} scope)",
                    self.settings.admin_scope
                )));
            }
            // Boxed: keeps the futures' types shallow enough for the compiler's layout queries.
            match route(request).ok_or_else(|| ApiError::not_found("route"))? {
                Route::Queue => Box::pin(self.queue()).await,
                Route::RetryAll => Box::pin(self.retry_all(&identity, request)).await,
                Route::Reset(stage) => Box::pin(self.reset(&identity, &stage)).await,
            }
        }
        .await;
        result.unwrap_or_else(|e| apigw_http::error(&e))
    }

    async fn queue(&self) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let p = &self.ports;
        let view = queue_view(
            ViewPorts {
                index: &p.images,
                queues: &p.dead_letters,
                control: &p.control,
                throughput: &p.throughput,
            },
            &self.settings.breaker,
            Timestamp::now(),
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "the processing-queue view failed");
            ApiError::unavailable()
        })?;
        Ok(apigw_http::json(200, &view))
    }

    async fn retry_all(
        &self,
        identity: &Identity,
        request: &ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let body = apigw_http::body_bytes(request)?;
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
        let p = &self.ports;
        let report = retry_all_failed(
            RetryPorts {
                images: &p.images,
                queue: &p.queue,
                admin: &p.dead_letters,
            },
            &ask,
            RetryLimits {
                rate_per_sec: self.settings.retry_rate_per_sec,
                budget: self.settings.retry_call_budget,
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
        Ok(apigw_http::json(200, &report))
    }

    async fn reset(
        &self,
        identity: &Identity,
        stage: &str,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let stage = match stage {
            "thumbnail" => Stage::Thumbnail,
            "variant" => Stage::Variant,
            _ => return Err(ApiError::not_found("circuit")),
        };
        let done = reset_circuit(
            &self.ports.control,
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
        Ok(apigw_http::json(200, &done))
    }
}

impl<R, Q, A, C, T> Admin<R, Q, A, C, T> {
    /// The ports (tests inspect them).
    pub fn ports(&self) -> &AdminPorts<R, Q, A, C, T> {
        &self.ports
    }
}
