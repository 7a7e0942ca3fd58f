//! Lambda wiring for the `images` function.
// The handler's futures behind the fault decorator (local builds) nest deeper than rustc's
// default layout depth of 128.
#![recursion_limit = "256"]

use images::Images;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use safelight::aws::telemetry::{self, Telemetry};
use safelight::aws::{self, Delivery, DynamoImages, S3Store, SqsQueues};
use safelight::Config;
use tracing::Instrument as _;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = Telemetry::init()?;
    let config = Config::from_env()?;
    let faults = aws::FaultInjection::parse(config.faults.as_deref())?;
    let sdk = aws::load_sdk_config().await;
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
