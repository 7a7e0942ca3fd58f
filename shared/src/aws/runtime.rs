//! The Lambda loop of every function: [`run`] for an event handler, [`run_http`] for an HTTP
//! API function's axum `Router` (API Gateway payload format 2.0 through `lambda_http`). Both
//! write each invocation's metrics when it ends ([`Telemetry::flush`]), before the answer goes
//! back to Lambda.

use std::convert::Infallible;
use std::future::{ready, Future};

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse as _;
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use lambda_http::request::LambdaRequest;
use lambda_http::Service as _;
use lambda_http::{Adapter, Request};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tower_http::normalize_path::NormalizePath;
use tracing::Instrument as _;

use super::telemetry::{self, Telemetry};
use crate::api::ApiError;

/// Runs `handler` on every invocation; each invocation's metrics are written when it ends.
pub async fn run<E, R, F, Fut>(telemetry: &Telemetry, handler: F) -> Result<(), Error>
where
    E: DeserializeOwned,
    R: Serialize,
    F: Fn(LambdaEvent<E>) -> Fut,
    Fut: Future<Output = Result<R, Error>>,
{
    lambda_runtime::run(service_fn(|event: LambdaEvent<E>| {
        let request_id = event.context.request_id.clone();
        let answer = handler(event);
        async move {
            let answer = answer.await;
            telemetry.flush(&request_id);
            answer
        }
    }))
    .await
}

/// Runs an HTTP API function: every request is answered by `router`, in its own request span
/// (see [`telemetry::request_span`]).
pub async fn run_http(telemetry: &Telemetry, router: Router) -> Result<(), Error> {
    let app = app(router);
    run(telemetry, |event: LambdaEvent<LambdaRequest>| {
        let app = app.clone();
        async move {
            Ok::<_, Error>(
                answer(app, event)
                    .instrument(telemetry::request_span())
                    .await,
            )
        }
    })
    .await
}

/// The router as it serves requests: the path's leading and trailing slashes trimmed, as
/// `/api/images/` names `/api/images`; bodies as large as Lambda delivers (each route sets its
/// own limit).
type App = NormalizePath<Router>;

fn app(router: Router) -> App {
    NormalizePath::trim_trailing_slash(router.layer(DefaultBodyLimit::disable()))
}

/// One invocation: the event as an `http::Request` to `app`, its response as API Gateway's.
/// (An axum router is always ready, so the adapter is called without waiting for it, and is not
/// held across the await, which keeps this future `Send`.)
async fn answer(app: App, mut event: LambdaEvent<LambdaRequest>) -> impl Serialize {
    let pending = match undecodable_body(&mut event.payload) {
        None => Adapter::from(app).call(event),
        Some(refusal) => {
            let refuse = service_fn(move |_: Request| ready(Ok(refusal.clone().into_response())));
            Adapter::from(refuse).call(event)
        }
    };
    pending
        .await
        .unwrap_or_else(|never: Infallible| match never {})
}

/// lambda_http decodes a body flagged base64 with `expect`: one that is not base64 (API Gateway
/// never sends one; a direct invoke can) is taken out of the event and refused with the API's
/// 400 instead.
fn undecodable_body(event: &mut LambdaRequest) -> Option<ApiError> {
    let LambdaRequest::ApiGatewayV2(request) = event else {
        return None;
    };
    let ApiGatewayV2httpRequest {
        is_base64_encoded: true,
        body: Some(body),
        ..
    } = request
    else {
        return None;
    };
    if B64.decode(&*body).is_ok() {
        return None;
    }
    request.body = None;
    request.is_base64_encoded = false;
    Some(ApiError::bad_request(
        "bad_body",
        "the request body is not valid base64",
    ))
}

/// One API Gateway event through `router` exactly as [`run_http`] serves it, for handler tests.
#[cfg(feature = "testing")]
pub async fn invoke(
    router: Router,
    request: ApiGatewayV2httpRequest,
) -> aws_lambda_events::apigw::ApiGatewayV2httpResponse {
    let event = LambdaEvent::new(
        LambdaRequest::ApiGatewayV2(request),
        lambda_runtime::Context::default(),
    );
    let answer = serde_json::to_value(answer(app(router), event).await);
    match answer.and_then(serde_json::from_value) {
        Ok(response) => response,
        Err(e) => panic!("not an API Gateway response: {e}"),
    }
}
