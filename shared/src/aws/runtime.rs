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

/// What every function's wiring starts from, in one call: its telemetry (started), its
/// configuration (an error names the variable), the fault injection the configuration asks for
/// (local builds only; nothing in an AWS build) and the SDK's configuration.
pub async fn start() -> Result<
    (
        Telemetry,
        crate::Config,
        super::FaultInjection,
        aws_config::SdkConfig,
    ),
    Error,
> {
    let telemetry = Telemetry::init()?;
    let config = crate::Config::from_env()?;
    let faults = super::FaultInjection::parse(config.faults.as_deref())?;
    let sdk = super::load_sdk_config().await;
    Ok((telemetry, config, faults, sdk))
}

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

/// One invocation: the event as an `http::Request` to `app`, its response as API Gateway's,
/// through lambda_http's `Adapter` (what `lambda_http::run` wraps; public, hidden from its docs),
/// so a body that is not base64 can be refused before it converts the event. An axum router is
/// always ready, so the adapter is called without waiting for it, and is not held across the
/// await, which keeps this future `Send`.
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use axum::routing::post;
    use serde_json::{json, Value};

    use super::*;
    use crate::aws::http::{self, Query};
    use crate::domain::Identity;

    /// A router with one route that echoes its caller, its query and its body's length.
    fn router() -> Router {
        let echo = |caller: Identity, query: Query, body: axum::body::Bytes| async move {
            let limit = query.first("limit").map(str::to_owned);
            http::json(200, &json!([caller.owner.as_str(), limit, body.len()]))
        };
        http::or_else(Router::new().route("/api/echo", post(echo)), http::no_route)
    }

    /// An API Gateway event (payload 2.0) as the authorizer passes it on.
    fn event(method: &str, path: &str, body: Option<&str>, base64: bool) -> Value {
        json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "limit=7",
            "headers": {"host": "api.example.com"},
            "requestContext": {
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4"},
                "authorizer": {"jwt": {"claims": {"sub": "alice"}, "scopes": null}},
                "stage": "$default", "requestId": "r", "accountId": "1", "apiId": "a",
                "domainName": "api.example.com", "domainPrefix": "api", "time": "t", "timeEpoch": 0
            },
            "body": body, "isBase64Encoded": base64
        })
    }

    /// The response Lambda hands back to API Gateway.
    async fn call(event: Value) -> Value {
        let event = LambdaEvent::new(
            serde_json::from_value(event).unwrap(),
            lambda_runtime::Context::default(),
        );
        serde_json::to_value(answer(app(router()), event).await).unwrap()
    }

    fn answered(response: &Value) -> (i64, Value) {
        let body = response["body"].as_str().unwrap();
        (
            response["statusCode"].as_i64().unwrap(),
            serde_json::from_str(body).unwrap(),
        )
    }

    #[tokio::test]
    async fn a_route_gets_the_callers_identity_its_query_and_its_decoded_body() {
        let response = call(event("POST", "/api/echo", Some("AAEC"), true)).await;
        assert_eq!(answered(&response), (200, json!(["alice", "7", 3])));
        assert_eq!(response["headers"]["content-type"], "application/json");
        assert_eq!(response["headers"]["cache-control"], "no-store");
        assert_eq!(response["isBase64Encoded"], false);
    }

    #[tokio::test]
    async fn a_body_flagged_base64_that_is_not_is_refused_with_the_apis_400() {
        let response = call(event("POST", "/api/echo", Some("%%% no %%%"), true)).await;
        let (status, body) = answered(&response);
        assert_eq!((status, &body["error"]["code"]), (400, &json!("bad_body")));
        assert_eq!(response["headers"]["cache-control"], "no-store");
    }

    #[tokio::test]
    async fn another_path_or_another_method_is_404_and_slashes_around_a_path_are_trimmed() {
        for (method, path) in [("POST", "/api/nope"), ("GET", "/api/echo"), ("DELETE", "/")] {
            let (status, body) = answered(&call(event(method, path, None, false)).await);
            assert_eq!(
                (status, body["error"]["code"].clone()),
                (404, json!("not_found"))
            );
        }
        let (status, _) = answered(&call(event("POST", "//api/echo/", None, false)).await);
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn without_the_authorizers_claims_every_path_is_401() {
        for path in ["/api/echo", "/api/nope"] {
            let mut e = event("POST", path, None, false);
            e["requestContext"]
                .as_object_mut()
                .unwrap()
                .remove("authorizer");
            assert_eq!(answered(&call(e).await).0, 401, "{path}");
        }
    }
}
