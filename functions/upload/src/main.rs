//! Lambda wiring for the `upload` function.

use lambda_runtime::{service_fn, tracing, Error, LambdaEvent};
use safelight::aws::{self, DynamoImages, Faults, S3Store};
use safelight::Config;
use upload::{Limits, Upload};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let faults = Faults::parse(config.faults.as_deref())?;
    let sdk = aws::load_sdk_config().await;
    let handler = Upload::new(
        S3Store::new(&sdk, &config.bucket, faults.clone()),
        DynamoImages::new(&sdk, &config.images_table, faults),
        Limits {
            max_upload_bytes: config.max_upload_bytes,
            presign_expires: config.presign_expires,
        },
    );
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        Ok::<_, Error>(handler.handle(&event.payload).await)
    }))
    .await
}
