//! Lambda wiring for the `backfill` function.
// The handler's futures behind the fault decorator (local builds) nest deeper than rustc's
// default layout depth of 128.
#![recursion_limit = "256"]

use std::sync::atomic::AtomicBool;

use backfill::{deadline_from_epoch_millis, settings_from_env, Backfill};
use lambda_runtime::{Error, LambdaEvent};
use safelight::aws::{runtime, DynamoControl, DynamoImages, S3Store, SqsQueues};
use safelight::ops::backfill::BackfillRequest;
use safelight::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (telemetry, config, faults, sdk) = runtime::start().await?;
    let settings = settings_from_env()?;
    let control = Config::require(&config.control_table, "CONTROL_TABLE")?;
    let thumbnails = Config::require(&config.thumbnails_queue_url, "THUMBNAILS_QUEUE_URL")?;
    let variants = Config::require(&config.variants_queue_url, "VARIANTS_QUEUE_URL")?;
    let handler = Backfill::new(
        faults.wrap(S3Store::new(&sdk, &config.bucket)),
        faults.wrap(DynamoImages::new(&sdk, &config.images_table)),
        faults.wrap(SqsQueues::new(
            &sdk,
            Some(thumbnails.to_owned()),
            Some(variants.to_owned()),
        )),
        faults.wrap(DynamoControl::new(&sdk, control)),
        settings,
    );
    let handler = &handler;
    let never = &AtomicBool::new(false);
    runtime::run(
        &telemetry,
        move |event: LambdaEvent<BackfillRequest>| async move {
            let deadline = deadline_from_epoch_millis(event.context.deadline);
            Ok(handler
                .run(event.payload, Some(deadline), never, |_| {})
                .await?)
        },
    )
    .await
}
