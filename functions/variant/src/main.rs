//! The `variant` function: SQS (variants queue) -> display variants. The pipeline is
//! `safelight::processing`; this is its wiring for the variant stage.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    safelight::aws::processor::run(variant::STAGE).await
}
