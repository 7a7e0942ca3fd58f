//! The HTTP API's error contract: `{"error": {"code": "...", "message": "..."}}` with a fitting
//! status. Pure; the API Gateway adapter turns it into a response.

use serde_json::json;

/// An error answer of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable machine code, e.g. `unsupported_type`.
    pub code: &'static str,
    /// Human-readable explanation, safe to show to the caller.
    pub message: String,
    /// Seconds the caller should wait before trying again (the `Retry-After` header of a 429).
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// 429: the caller is over one of its limits; try again after `retry_after_secs`.
    pub fn too_many_requests(
        code: &'static str,
        message: impl Into<String>,
        retry_after_secs: u64,
    ) -> Self {
        ApiError {
            retry_after_secs: Some(retry_after_secs.max(1)),
            ..Self::new(429, code, message)
        }
    }

    /// The 429 answer to a per-owner limit.
    pub fn over_limit(refusal: crate::limits::Refusal) -> Self {
        use crate::limits::Refusal;
        let secs = refusal.retry_after_secs();
        match refusal {
            Refusal::UploadRate { .. } => Self::too_many_requests(
                "rate_limited",
                format!("too many upload requests this minute; try again in {secs} s"),
                secs,
            ),
            Refusal::AwaitingUploads { .. } => Self::too_many_requests(
                "too_many_pending_uploads",
                format!("too many uploads are still waiting for their bytes; send them, or try again in {secs} s"),
                secs,
            ),
            Refusal::Connections { .. } => Self::too_many_requests(
                "too_many_connections",
                format!("too many open connections; close one, or try again in {secs} s"),
                secs,
            ),
        }
    }

    /// 400
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// 401: no verified identity.
    pub fn unauthorized() -> Self {
        Self::new(401, "unauthorized", "a valid bearer token is required")
    }

    /// 403
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }

    /// 404: also what a caller gets for someone else's image, so existence is not revealed.
    pub fn not_found(what: &str) -> Self {
        Self::new(404, "not_found", format!("{what} not found"))
    }

    /// 409
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(409, code, message)
    }

    /// 500: the details go to the log, not to the caller.
    pub fn internal() -> Self {
        Self::new(
            500,
            "internal",
            "something went wrong on our side; try again",
        )
    }

    /// 503: a dependency is unavailable; the caller may retry.
    pub fn unavailable() -> Self {
        Self::new(
            503,
            "unavailable",
            "a storage service is unavailable; try again shortly",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "code": self.code, "message": self.message } })
    }
}
