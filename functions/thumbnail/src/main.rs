//! The `thumbnail` function: SQS (thumbnails queue) -> thumbnails. The pipeline is
//! `safelight::processing`; this is its wiring for the thumbnail stage.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    safelight::aws::processor::run(thumbnail::STAGE).await
}
