//! The pipeline's own metrics, recorded through the `metrics` facade: one function per metric so
//! call sites stay one line and names and dimensions live in one place. Nothing here knows
//! where metrics go; the functions install a CloudWatch Embedded Metric Format recorder
//! (`crate::aws::telemetry`), and without a recorder (tests, tools) every call is a no-op.
//!
//! | metric | unit | dimensions | recorded when |
//! |---|---|---|---|
//! | `RenderMs` | ms | `Stage` | a stage rendered an original (decode, resize, encode) |
//! | `BytesIn` / `BytesOut` | bytes | `Stage` | the original read / the derivatives written |
//! | `Failures` | count | `Stage`, `Kind` | a message failed (`transient`, `permanent`, `rejected`) |
//! | `BreakerOpened` / `BreakerClosed` | count | `Stage` | a circuit breaker changed state |
//! | `NoticesSent` | count | `Type` | notify delivered a notice to a connection |
//! | `UploadToCompleteMs` | ms | — | an image's processing completed (created -> completed) |
//! | `AwsCalls` | count | `Service`, `Operation` | an AWS SDK operation started (counted by `crate::aws::telemetry`) |
//! | `BreakerReads` | count | `Stage` | a processor read its stage's breaker row (the hot item; cached per process) |
//!
//! The template's alarms and dashboard name these metrics (`BreakerOpened` with `Stage`): keep
//! them in step.

use std::time::Duration;

use crate::domain::{ErrorKind, Stage};

/// Metric names, as the template's alarms and dashboard use them.
pub mod names {
    /// Milliseconds a stage spent rendering one original.
    pub const RENDER_MS: &str = "RenderMs";
    /// Bytes of the original a stage read.
    pub const BYTES_IN: &str = "BytesIn";
    /// Bytes of the derivatives a stage wrote.
    pub const BYTES_OUT: &str = "BytesOut";
    /// Failed messages, by stage and kind.
    pub const FAILURES: &str = "Failures";
    /// A circuit breaker opened.
    pub const BREAKER_OPENED: &str = "BreakerOpened";
    /// A circuit breaker closed after a successful probe.
    pub const BREAKER_CLOSED: &str = "BreakerClosed";
    /// Notices delivered to a WebSocket connection, by type.
    pub const NOTICES_SENT: &str = "NoticesSent";
    /// Upload (row created) to processing completed, in milliseconds.
    pub const UPLOAD_TO_COMPLETE_MS: &str = "UploadToCompleteMs";
    /// AWS API operations made, by service and operation.
    pub const AWS_CALLS: &str = "AwsCalls";
    /// Strongly consistent reads of a stage's breaker row.
    pub const BREAKER_READS: &str = "BreakerReads";
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A stage rendered one original in `took`.
pub fn render(stage: Stage, took: Duration) {
    metrics::histogram!(names::RENDER_MS, "Stage" => stage.as_str()).record(ms(took));
}

/// A stage read `bytes_in` of original and wrote `bytes_out` of derivatives.
pub fn bytes(stage: Stage, bytes_in: u64, bytes_out: u64) {
    metrics::counter!(names::BYTES_IN, "Stage" => stage.as_str()).increment(bytes_in);
    metrics::counter!(names::BYTES_OUT, "Stage" => stage.as_str()).increment(bytes_out);
}

/// A message of `stage` failed with `kind`.
pub fn failure(stage: Stage, kind: ErrorKind) {
    metrics::counter!(names::FAILURES, "Stage" => stage.as_str(), "Kind" => kind.as_str())
        .increment(1);
}

/// The circuit breaker of `stage` opened.
pub fn breaker_opened(stage: Stage) {
    metrics::counter!(names::BREAKER_OPENED, "Stage" => stage.as_str()).increment(1);
}

/// The circuit breaker of `stage` closed.
pub fn breaker_closed(stage: Stage) {
    metrics::counter!(names::BREAKER_CLOSED, "Stage" => stage.as_str()).increment(1);
}

/// A notice of type `kind` (e.g. `image:processing:complete`) reached a connection.
pub fn notice_sent(kind: &'static str) {
    metrics::counter!(names::NOTICES_SENT, "Type" => kind).increment(1);
}

/// An image completed `took` after its upload was accepted.
pub fn upload_to_complete(took: Duration) {
    metrics::histogram!(names::UPLOAD_TO_COMPLETE_MS).record(ms(took));
}

/// An AWS API operation (`service`, `operation` as the SDK names them: `S3`, `GetObject`).
pub fn aws_call(service: &'static str, operation: &'static str) {
    metrics::counter!(names::AWS_CALLS, "Service" => service, "Operation" => operation)
        .increment(1);
}

/// The breaker row of `stage` was read.
pub fn breaker_read(stage: Stage) {
    metrics::counter!(names::BREAKER_READS, "Stage" => stage.as_str()).increment(1);
}

/// Registers each metric's unit with the installed recorder (milliseconds, bytes, counts).
pub fn describe() {
    use metrics::Unit;
    metrics::describe_histogram!(
        names::RENDER_MS,
        Unit::Milliseconds,
        "render time of one original"
    );
    metrics::describe_counter!(names::BYTES_IN, Unit::Bytes, "original bytes read");
    metrics::describe_counter!(names::BYTES_OUT, Unit::Bytes, "derivative bytes written");
    metrics::describe_counter!(names::FAILURES, Unit::Count, "failed messages");
    metrics::describe_counter!(names::BREAKER_OPENED, Unit::Count, "circuit breaker opened");
    metrics::describe_counter!(names::BREAKER_CLOSED, Unit::Count, "circuit breaker closed");
    metrics::describe_counter!(names::NOTICES_SENT, Unit::Count, "notices delivered");
    metrics::describe_counter!(names::AWS_CALLS, Unit::Count, "AWS API operations made");
    metrics::describe_counter!(names::BREAKER_READS, Unit::Count, "breaker row reads");
    metrics::describe_histogram!(
        names::UPLOAD_TO_COMPLETE_MS,
        Unit::Milliseconds,
        "upload accepted to processing completed"
    );
}
