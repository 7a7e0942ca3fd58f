//! Lambda wiring for the `upload` function.

use std::sync::Arc;

use lambda_runtime::Error;
use safelight::aws::{runtime, DynamoDigests, DynamoImages, DynamoRates, S3Store};
use safelight::Config;
use upload::{Limits, Upload};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (telemetry, config, faults, sdk) = runtime::start().await?;
    let control_table = Config::require(&config.control_table, "CONTROL_TABLE")?;
    let handler = Upload::new(
        faults.wrap(S3Store::new(&sdk, &config.bucket)),
        faults.wrap(DynamoImages::new(&sdk, &config.images_table)),
        faults.wrap(DynamoDigests::new(&sdk, control_table)),
        faults.wrap(DynamoRates::new(&sdk, control_table)),
        Limits {
            max_upload_bytes: config.max_upload_bytes,
            presign_expires: config.presign_expires,
            owner: config.owner_limits,
        },
    );
    runtime::run_http(&telemetry, Arc::new(handler).router()).await
}
