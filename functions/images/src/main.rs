//! Lambda wiring for the `images` function.

use images::Images;
use lambda_runtime::{service_fn, tracing, Error, LambdaEvent};
use safelight::aws::{self, DynamoImages, Faults, S3Store, SqsQueues};
use safelight::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let faults = Faults::parse(config.faults.as_deref())?;
    let sdk = aws::load_sdk_config().await;
    let handler = Images::new(
        S3Store::new(&sdk, &config.bucket, faults.clone()),
        DynamoImages::new(&sdk, &config.images_table, faults.clone()),
        SqsQueues::new(
            &sdk,
            config.thumbnails_queue_url.clone(),
            config.variants_queue_url.clone(),
            faults,
        ),
    );
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        Ok::<_, Error>(handler.handle(&event.payload).await)
    }))
    .await
}
