//! A function's logs and metrics on Lambda: JSON log lines on stdout (tracing, every line with
//! the invocation's spans: lambda_runtime's `requestId` and, while an image is handled, its
//! `image_id`), and the `crate::metrics` recorded during an invocation written after it as
//! CloudWatch Embedded Metric Format documents (`metrics_cloudwatch_embedded`), which CloudWatch
//! Logs turns into metrics in the `METRICS_NAMESPACE` namespace.
//!
//! Every AWS API operation a function makes is counted as `AwsCalls` (dimensions `Service`,
//! `Operation`) by [`sdk_calls_layer`]: a tracing layer that sees the operation span each SDK
//! client opens (`S3.GetObject`, `DynamoDB.UpdateItem`, ...; target `aws_sdk_*`, debug level)
//! whatever the log level, and writes nothing to the logs. So a function's requests to each
//! service (its cost drivers) are a metric per invocation, not something to dig out of debug
//! logs; `make proof`'s scale model sums them. One operation is one count however many HTTP
//! attempts its retries took.
//!
//! JSON is used whatever `AWS_LAMBDA_LOG_FORMAT` says: the template asks Lambda for JSON, and the
//! local emulator does not pass the variable.

use std::io::Write as _;

use lambda_runtime::tracing::subscriber::{
    self,
    filter::{filter_fn, LevelFilter},
    layer::{Context, SubscriberExt as _},
    registry::LookupSpan,
    util::SubscriberInitExt as _,
    EnvFilter, Layer,
};
use thiserror::Error;
use tracing::span::{Attributes, Id};
use tracing::{Metadata, Subscriber};

/// Namespace when `METRICS_NAMESPACE` is unset (the template sets `Safelight/<stack>`).
pub const DEFAULT_NAMESPACE: &str = "Safelight";

/// Why telemetry could not start.
#[derive(Debug, Error)]
pub enum TelemetryError {
    /// The EMF recorder could not be installed (another recorder is already global).
    #[error("metrics recorder: {0}")]
    Recorder(String),
}

/// The installed log subscriber and metrics recorder of one function process.
pub struct Telemetry {
    collector: &'static metrics_cloudwatch_embedded::Collector,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Installs JSON logging and the EMF recorder; call once at cold start, before anything logs.
    pub fn init() -> Result<Telemetry, TelemetryError> {
        init_json_logs();
        let namespace = std::env::var("METRICS_NAMESPACE")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let collector = metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace(namespace)
            .init()
            .map_err(|e| TelemetryError::Recorder(e.to_string()))?;
        // Names the function in every document, so metrics read from a shared log stream (the
        // local stack's, a Logs Insights query over several log groups) can be told apart.
        if let Ok(name) = std::env::var("AWS_LAMBDA_FUNCTION_NAME") {
            collector.set_property("functionName", name);
        }
        crate::metrics::describe();
        Ok(Telemetry { collector })
    }

    /// Writes the metrics recorded since the last flush as EMF documents, tagged with the
    /// invocation's request id. Call at the end of every invocation. A write failure is logged,
    /// never raised: metrics must not fail an invocation.
    pub fn flush(&self, request_id: &str) {
        self.collector
            .set_property("requestId", request_id.to_owned());
        let mut buf = Vec::new();
        let written = self
            .collector
            .flush(&mut buf)
            .and_then(|()| std::io::stdout().lock().write_all(&buf));
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not write the metrics");
        }
    }
}

/// JSON lines on stdout; level from `AWS_LAMBDA_LOG_LEVEL` (Lambda's log level setting), else
/// `RUST_LOG`, else INFO.
fn init_json_logs() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy("");
    let logs = subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(true)
        .with_target(true)
        .with_writer(std::io::stdout)
        .with_filter(filter);
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = subscriber::registry()
        .with(logs)
        .with(sdk_calls_layer())
        .try_init();
}

/// The layer that counts AWS SDK operations as the `AwsCalls` metric (see the module
/// documentation). Its own filter lets through only the SDK's operation spans, so the log
/// level is untouched and nothing else reaches it.
pub fn sdk_calls_layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    SdkCalls.with_filter(filter_fn(is_sdk_operation).with_max_level_hint(LevelFilter::DEBUG))
}

/// An SDK client's operation span: `Service.Operation`, with `rpc.service` and `rpc.method`.
fn is_sdk_operation(meta: &Metadata<'_>) -> bool {
    meta.is_span()
        && meta.target().starts_with("aws_sdk_")
        && meta.fields().field("rpc.method").is_some()
        && meta.name().contains('.')
}

struct SdkCalls;

impl<S: Subscriber> Layer<S> for SdkCalls {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        if let Some((service, operation)) = attrs.metadata().name().split_once('.') {
            crate::metrics::aws_call(service, operation);
        }
    }
}

/// The span an HTTP function runs each request in: its `image_id` field is filled in by
/// [`tag_image`] once the request names an image, so every later log line of the request
/// carries it (the request id comes from lambda_runtime's own span).
pub fn request_span() -> tracing::Span {
    tracing::info_span!("request", image_id = tracing::field::Empty)
}

/// Puts `image_id` on the current request span (see [`request_span`]).
pub fn tag_image(image_id: crate::domain::ImageId) {
    tracing::Span::current().record("image_id", tracing::field::display(image_id));
}
