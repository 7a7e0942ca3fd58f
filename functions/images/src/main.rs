//! Lambda wiring for the `images` function.

use std::sync::Arc;

use images::Images;
use lambda_runtime::Error;
use safelight::aws::{runtime, Delivery, DynamoImages, S3Store, SqsQueues};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (telemetry, config, faults, sdk) = runtime::start().await?;
    let links = Delivery::new(
        &sdk,
        config.delivery.as_ref(),
        S3Store::new(&sdk, &config.bucket),
    )
    .await?;
    let handler = Images::new(
        links,
        faults.wrap(DynamoImages::new(&sdk, &config.images_table)),
        faults.wrap(SqsQueues::new(
            &sdk,
            config.thumbnails_queue_url.clone(),
            config.variants_queue_url.clone(),
        )),
        config.link_window,
    );
    runtime::run_http(&telemetry, Arc::new(handler).router()).await
}
