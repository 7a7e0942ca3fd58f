//! A function's logs and metrics on Lambda: JSON log lines on stdout (tracing, every line with
//! the invocation's spans: lambda_runtime's `requestId` and, while an image is handled, its
//! `image_id`), and the `crate::metrics` recorded during an invocation written after it as
//! CloudWatch Embedded Metric Format documents (`metrics_cloudwatch_embedded`), which CloudWatch
//! Logs turns into metrics in the `METRICS_NAMESPACE` namespace.
//!
//! JSON is used whatever `AWS_LAMBDA_LOG_FORMAT` says: the template asks Lambda for JSON, and the
//! local emulator does not pass the variable.

use std::io::Write as _;

use lambda_runtime::tracing::subscriber::{self, filter::LevelFilter, EnvFilter};
use thiserror::Error;

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
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(true)
        .with_target(true)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
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
