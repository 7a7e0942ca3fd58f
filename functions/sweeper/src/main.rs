//! Lambda wiring for the `sweeper` function.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use safelight::aws::telemetry::Telemetry;
use safelight::aws::{self, DynamoImages, Faults, SqsQueues};
use safelight::sweep::{SweepPolicy, Sweeper};
use safelight::{Config, OpsSettings};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = Telemetry::init()?;
    let config = Config::from_env()?;
    let settings = OpsSettings::from_env()?;
    let faults = Faults::parse(config.faults.as_deref())?;
    Config::require(&settings.thumbnails_dlq_url, "THUMBNAILS_DLQ_URL")?;
    Config::require(&settings.variants_dlq_url, "VARIANTS_DLQ_URL")?;
    let sdk = aws::load_sdk_config().await;
    let dead_letters = SqsQueues::new(&sdk, None, None, faults.clone())
        .with_dead_letter_queues(settings.thumbnails_dlq_url, settings.variants_dlq_url);
    let sweeper = Sweeper::new(
        DynamoImages::new(&sdk, &config.images_table, faults),
        dead_letters,
        SweepPolicy {
            presign_lifetime: config.presign_expires,
            ..SweepPolicy::default()
        },
    );
    let (sweeper, telemetry) = (&sweeper, &telemetry);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let report = sweeper::handle(sweeper).await;
            telemetry.flush(&event.context.request_id);
            Ok::<_, Error>(report?)
        },
    ))
    .await
}
