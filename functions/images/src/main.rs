//! Lambda wiring for the `images` function.

use images::Images;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use safelight::aws::telemetry::{self, Telemetry};
use safelight::aws::{self, Delivery, DynamoImages, Faults, S3Store, SqsQueues};
use safelight::Config;
use tracing::Instrument as _;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = Telemetry::init()?;
    let config = Config::from_env()?;
    let faults = Faults::parse(config.faults.as_deref())?;
    let sdk = aws::load_sdk_config().await;
    let links = Delivery::new(
        &sdk,
        config.delivery.as_ref(),
        S3Store::new(&sdk, &config.bucket, faults.clone()),
    )
    .await?;
    let handler = Images::new(
        links,
        DynamoImages::new(&sdk, &config.images_table, faults.clone()),
        SqsQueues::new(
            &sdk,
            config.thumbnails_queue_url.clone(),
            config.variants_queue_url.clone(),
            faults,
        ),
        config.link_window,
    );
    let (handler, telemetry) = (&handler, &telemetry);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        let response = handler
            .handle(&event.payload)
            .instrument(telemetry::request_span())
            .await;
        telemetry.flush(&event.context.request_id);
        Ok::<_, Error>(response)
    }))
    .await
}
