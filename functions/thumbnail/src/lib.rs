//! The `thumbnail` function's handler: an SQS batch from the thumbnails queue through
//! [`safelight::processing`] for the thumbnail stage, answered with a partial batch response.

pub use safelight::aws::processor::handle_sqs;

/// The stage this function runs.
pub const STAGE: safelight::Stage = safelight::Stage::Thumbnail;
