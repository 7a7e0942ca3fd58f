//! Wiring of the `thumbnail` and `variant` functions: the processing pipeline on S3, DynamoDB
//! and SQS, fed by the SQS event source with partial batch responses.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};

use super::{sqs, DynamoControl, DynamoImages, S3Store, SqsQueues};
use crate::config::{Config, ProcessingConfig};
use crate::domain::{Stage, Timestamp};
use crate::ports::{ControlStore, ImageRepository, JobQueue, ObjectStore};
use crate::processing::{Policy, Ports, Processor};

/// Runs one SQS event through the processor and answers with the messages to keep. `deadline`
/// is the invocation's (the Lambda context's `deadline`, epoch milliseconds).
pub async fn handle_sqs<S, R, Q, C>(
    processor: &Processor<S, R, Q, C>,
    event: &SqsEvent,
    deadline: Option<Timestamp>,
) -> SqsBatchResponse
where
    S: ObjectStore,
    R: ImageRepository,
    Q: JobQueue,
    C: ControlStore,
{
    sqs::batch_response(
        processor
            .handle_batch_until(&sqs::messages(event), deadline)
            .await,
    )
}

/// Cold start and the Lambda loop for a processing function.
pub async fn run(stage: Stage) -> Result<(), Error> {
    let (telemetry, config, faults, sdk) = super::runtime::start().await?;
    let processing = ProcessingConfig::from_env(stage)?;
    let control_table = Config::require(&config.control_table, "CONTROL_TABLE")?;
    let (thumbnails, variants) = match stage {
        Stage::Thumbnail => (
            Some(Config::require(&config.thumbnails_queue_url, "THUMBNAILS_QUEUE_URL")?.to_owned()),
            None,
        ),
        Stage::Variant => (
            None,
            Some(Config::require(&config.variants_queue_url, "VARIANTS_QUEUE_URL")?.to_owned()),
        ),
    };
    let processor = Processor::new(
        stage,
        processing.specs,
        processing.limits,
        Policy {
            backoff: processing.backoff,
            breaker: processing.breaker,
            lease: processing.lease,
            ..Policy::default()
        },
        Ports {
            store: faults.wrap(S3Store::new(&sdk, &config.bucket)),
            images: faults.wrap(DynamoImages::new(&sdk, &config.images_table)),
            queue: faults.wrap(SqsQueues::new(&sdk, thumbnails, variants)),
            control: faults.wrap(DynamoControl::new(&sdk, control_table)),
        },
    );
    let processor = &processor;
    super::runtime::run(&telemetry, move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = i64::try_from(event.context.deadline)
            .ok()
            .map(Timestamp::from_unix_millis);
        Ok(handle_sqs(processor, &event.payload, deadline).await)
    })
    .await
}
