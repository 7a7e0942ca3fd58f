//! Lambda wiring for the `upload` function.
// The handler's futures behind the fault decorator (local builds) nest deeper than rustc's
// default layout depth of 128.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, Error, LambdaEvent};
use safelight::aws::telemetry::{self, Telemetry};
use safelight::aws::{self, DynamoDigests, DynamoImages, DynamoRates, S3Store};
use safelight::Config;
use tracing::Instrument as _;
use upload::{Limits, Upload};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = Telemetry::init()?;
    let config = Config::from_env()?;
    let faults = aws::FaultInjection::parse(config.faults.as_deref())?;
    let sdk = aws::load_sdk_config().await;
    let control_table = safelight::Config::require(&config.control_table, "CONTROL_TABLE")?;
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
