//! The `variant` function: SQS (variants queue) -> display variants. The pipeline is
//! `safelight::processing`; this is its wiring for the variant stage.
// The pipeline's future behind the fault decorator (local builds) nests deeper than rustc's
// default layout depth of 128.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    safelight::aws::processor::run(variant::STAGE).await
}
