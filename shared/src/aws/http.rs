//! The HTTP API edge (API Gateway payload format 2.0, through `lambda_http`): the caller's
//! identity from the JWT authorizer's claims, the query string, and responses in the API's error
//! contract, as axum extractors and responses. The functions route with an axum `Router`;
//! [`crate::aws::runtime::run_http`] runs one on Lambda.

use axum::extract::FromRequestParts;
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt as _;
use serde::Serialize;

use crate::api::ApiError;
use crate::domain::Identity;

/// The caller, from the claims API Gateway's JWT authorizer verified. No claims means the route
/// was reached without the authorizer: refuse rather than trust anything in the request.
impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let claims = match parts.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => context
                .authorizer
                .as_ref()
                .and_then(|a| a.jwt.as_ref())
                .map(|jwt| &jwt.claims),
            _ => None,
        }
        .ok_or_else(ApiError::unauthorized)?;
        Identity::from_claims(claims).map_err(|_| ApiError::unauthorized())
    }
}

/// The request's query-string parameters.
#[derive(Debug, Default)]
pub struct Query(pub QueryMap);

impl Query {
    /// The first value of parameter `name`.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.0.first(name)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Query(parts.query_string_parameters()))
    }
}

/// Answers a request no route matched (any path, any method), once the caller is known: 404.
pub async fn no_route(_caller: Identity) -> ApiError {
    ApiError::not_found("route")
}

/// `routes` with `rest` answering what they do not route: another path, or another method on
/// one of their paths (so there is no bare 405).
pub fn or_else<S, H, T>(routes: Router<S>, rest: H) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    H: Handler<T, S> + Clone,
    T: 'static,
{
    routes
        .method_not_allowed_fallback(rest.clone())
        .fallback(rest)
}

/// A JSON response.
pub fn json<T: Serialize>(status: u16, body: &T) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => response(status, text),
        Err(_) => ApiError::internal().into_response(),
    }
}

/// An error response in the API's contract, with `Retry-After` when the error carries one.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = response(self.status, self.body().to_string());
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

fn response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = [
        (header::CONTENT_TYPE, "application/json"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    (status, headers, body).into_response()
}
