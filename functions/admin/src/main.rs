//! Lambda wiring for the `admin` function.

use std::sync::Arc;

use admin::{Admin, AdminPorts};
use lambda_runtime::Error;
use safelight::aws::{runtime, DynamoControl, DynamoImages, SqsQueues};
use safelight::{Config, OpsSettings};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (telemetry, config, faults, sdk) = runtime::start().await?;
    let settings = OpsSettings::from_env()?;
    let control = Config::require(&config.control_table, "CONTROL_TABLE")?;
    Config::require(&settings.thumbnails_dlq_url, "THUMBNAILS_DLQ_URL")?;
    Config::require(&settings.variants_dlq_url, "VARIANTS_DLQ_URL")?;
    let queues = faults.wrap(
        SqsQueues::new(
            &sdk,
            Some(Config::require(&config.thumbnails_queue_url, "THUMBNAILS_QUEUE_URL")?.to_owned()),
            Some(Config::require(&config.variants_queue_url, "VARIANTS_QUEUE_URL")?.to_owned()),
        )
        .with_dead_letter_queues(
            settings.thumbnails_dlq_url.clone(),
            settings.variants_dlq_url.clone(),
        ),
    );
    let handler = Admin::new(
        AdminPorts {
            images: faults.wrap(DynamoImages::new(&sdk, &config.images_table)),
            queue: queues.clone(),
            dead_letters: queues,
            control: faults.wrap(DynamoControl::new(&sdk, control)),
            throughput: faults.wrap(DynamoControl::new(&sdk, control)),
        },
        settings,
    );
    runtime::run_http(&telemetry, Arc::new(handler).router()).await
}
