//! Lambda wiring for the `sweeper` function.
// The handler's futures behind the fault decorator (local builds) nest deeper than rustc's
// default layout depth of 128.
#![recursion_limit = "256"]

use lambda_runtime::{Error, LambdaEvent};
use safelight::aws::{runtime, DynamoImages, S3Store, SqsQueues};
use safelight::sweep::{SweepPolicy, SweepPorts, Sweeper};
use safelight::{Config, OpsSettings};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (telemetry, config, faults, sdk) = runtime::start().await?;
    let settings = OpsSettings::from_env()?;
    Config::require(&settings.thumbnails_dlq_url, "THUMBNAILS_DLQ_URL")?;
    Config::require(&settings.variants_dlq_url, "VARIANTS_DLQ_URL")?;
    let thumbnails = Config::require(&config.thumbnails_queue_url, "THUMBNAILS_QUEUE_URL")?;
    let variants = Config::require(&config.variants_queue_url, "VARIANTS_QUEUE_URL")?;
    let queues = faults.wrap(
        SqsQueues::new(&sdk, Some(thumbnails.to_owned()), Some(variants.to_owned()))
            .with_dead_letter_queues(settings.thumbnails_dlq_url, settings.variants_dlq_url),
    );
    let images = faults.wrap(DynamoImages::new(&sdk, &config.images_table));
    let store = faults.wrap(S3Store::new(&sdk, &config.bucket));
    let sweeper = Sweeper::new(
        SweepPorts {
            images: &images,
            dead_letters: &queues,
            store: &store,
            queue: &queues,
        },
        SweepPolicy {
            presign_lifetime: config.presign_expires,
            ..SweepPolicy::default()
        },
    );
    let sweeper = &sweeper;
    runtime::run(
        &telemetry,
        move |event: LambdaEvent<serde_json::Value>| async move {
            let budget = sweeper::budget(safelight::domain::time::until_epoch_millis(
                event.context.deadline,
            ));
            Ok(sweeper::handle(sweeper, budget).await?)
        },
    )
    .await
}
