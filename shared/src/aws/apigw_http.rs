//! The API Gateway HTTP API adapter (payload format 2.0): identity from the JWT authorizer's
//! claims, the request body, and JSON responses in the API's error contract.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Serialize;

use crate::api::ApiError;
use crate::domain::Identity;

/// The caller, from the claims API Gateway's JWT authorizer verified. No claims means the route
/// was reached without the authorizer: refuse rather than trust anything in the request.
pub fn identity(request: &ApiGatewayV2httpRequest) -> Result<Identity, ApiError> {
    let claims = request
        .request_context
        .authorizer
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .map(|jwt| &jwt.claims)
        .ok_or_else(ApiError::unauthorized)?;
    Identity::from_claims(claims).map_err(|_| ApiError::unauthorized())
}

/// A request header (case-insensitive).
pub fn header<'a>(request: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The request body as bytes (API Gateway base64-encodes binary bodies).
pub fn body_bytes(request: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, ApiError> {
    match &request.body {
        None => Ok(Vec::new()),
        Some(body) if request.is_base64_encoded => B64
            .decode(body)
            .map_err(|_| ApiError::bad_request("bad_body", "the request body is not valid base64")),
        Some(body) => Ok(body.as_bytes().to_vec()),
    }
}

/// A path parameter, e.g. `id` in `/api/images/{id}`.
pub fn path_param<'a>(request: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    request.path_parameters.get(name).map(String::as_str)
}

/// A query-string parameter.
pub fn query_param<'a>(request: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    request.query_string_parameters.first(name)
}

/// A JSON response.
pub fn json<T: Serialize>(status: u16, body: &T) -> ApiGatewayV2httpResponse {
    match serde_json::to_string(body) {
        Ok(text) => response(status, text),
        Err(_) => error(&ApiError::internal()),
    }
}

/// An error response in the API's contract.
pub fn error(err: &ApiError) -> ApiGatewayV2httpResponse {
    let mut response = response(err.status, err.body().to_string());
    if let Some(secs) = err.retry_after_secs {
        response
            .headers
            .insert("retry-after", HeaderValue::from(secs));
    }
    response
}

fn response(status: u16, body: String) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(Body::Text(body));
    response
}
