//! The `variant` function's handler: an SQS batch from the variants queue through
//! [`safelight::processing`] for the variant stage, answered with a partial batch response.

pub use safelight::aws::processor::handle_sqs;

/// The stage this function runs.
pub const STAGE: safelight::Stage = safelight::Stage::Variant;
