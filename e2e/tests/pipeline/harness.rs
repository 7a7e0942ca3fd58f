//! An isolated processing rig on the emulator: its own bucket (no event wiring), images and
//! control tables and a queue with a DLQ after 3 receives, driven by the real adapters and the
//! real pipeline, with a small event-source loop standing in for Lambda's SQS poller. Fault
//! injection and short backoffs are set per processor, so retries, the DLQ and the breaker can be
//! shown in seconds without touching the deployed stack.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use safelight::aws::{
    DynamoControl, DynamoImages, FaultInjection, MaybeFaulty, S3Store, SqsQueues,
};
use safelight::engine::{default_thumbnail_specs, Limits};
use safelight::ports::{ImageRepository, ObjectStore};
use safelight::processing::{Message, Policy, Ports, Processor};
use safelight::{ImageId, ImageRecord, ObjectKey, Stage};
use safelight_e2e::Stack;

pub type Rig = Processor<
    MaybeFaulty<S3Store>,
    MaybeFaulty<DynamoImages>,
    MaybeFaulty<SqsQueues>,
    MaybeFaulty<DynamoControl>,
>;

#[derive(Debug)]
pub struct Harness {
    pub stack: Stack,
    pub bucket: String,
    pub images_table: String,
    pub control_table: String,
    pub queue_url: String,
    pub dlq_url: String,
}

/// What the poller saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct Drained {
    pub receives: usize,
    pub redeliveries: usize,
    pub deleted: usize,
    pub late_deletes: usize,
}

async fn table(stack: &Stack, name: &str, key: &str) -> Result<()> {
    stack
        .dynamodb()
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build()?,
        )
        .send()
        .await
        .with_context(|| format!("creating table {name}"))?;
    Ok(())
}

impl Harness {
    /// A fresh rig; `visibility` is the queue's visibility timeout.
    pub async fn new(visibility: Duration) -> Result<Harness> {
        let stack = Stack::load().await?;
        let tag = ulid::Ulid::new().to_string().to_lowercase();
        let bucket = format!("rig-{tag}");
        stack
            .s3()
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .context("creating the rig bucket")?;
        let images_table = format!("rig-images-{tag}");
        let control_table = format!("rig-control-{tag}");
        table(&stack, &images_table, "image_id").await?;
        table(&stack, &control_table, "pk").await?;
        let sqs = stack.sqs();
        let dlq_url = sqs
            .create_queue()
            .queue_name(format!("rig-dlq-{tag}"))
            .send()
            .await?
            .queue_url
            .unwrap_or_default();
        let dlq_arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap_or_default();
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("rig-{tag}"))
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility.as_secs().to_string(),
            )
            .attributes(
                QueueAttributeName::RedrivePolicy,
                serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})
                    .to_string(),
            )
            .send()
            .await?
            .queue_url
            .unwrap_or_default();
        Ok(Harness {
            stack,
            bucket,
            images_table,
            control_table,
            queue_url,
            dlq_url,
        })
    }

    /// A thumbnail processor on the rig with `faults` (e.g. `s3_get:0.3`) and `policy`.
    pub fn processor(&self, faults: &str, policy: Policy) -> Result<Rig> {
        let faults = FaultInjection::parse(Some(faults))?;
        let sdk = &self.stack.sdk;
        Ok(Processor::new(
            Stage::Thumbnail,
            default_thumbnail_specs(),
            Limits::default(),
            policy,
            Ports {
                store: faults.wrap(S3Store::new(sdk, &self.bucket)),
                images: faults.wrap(DynamoImages::new(sdk, &self.images_table)),
                queue: faults.wrap(SqsQueues::new(sdk, Some(self.queue_url.clone()), None)),
                control: faults.wrap(DynamoControl::new(sdk, &self.control_table)),
            },
        ))
    }

    /// Stores an original with its row, as an upload would.
    pub async fn seed(&self, bytes: Vec<u8>) -> Result<ImageRecord> {
        let record = testkit::image("rig-user").size(bytes.len() as u64).build();
        let sdk = &self.stack.sdk;
        DynamoImages::new(sdk, &self.images_table)
            .create(&record)
            .await?;
        S3Store::new(sdk, &self.bucket)
            .put(&record.original_key, bytes, "image/jpeg")
            .await?;
        Ok(record)
    }

    /// Sends the EventBridge "Object Created" event for `key`, as the rule would.
    pub async fn send_event(&self, key: &ObjectKey) -> Result<()> {
        let body = serde_json::json!({
            "version": "0", "detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": self.bucket}, "object": {"key": key.as_str(), "size": 1}}
        });
        self.stack
            .sqs()
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body.to_string())
            .send()
            .await?;
        Ok(())
    }

    pub async fn row(&self, id: ImageId) -> Result<ImageRecord> {
        DynamoImages::new(&self.stack.sdk, &self.images_table)
            .get(id)
            .await?
            .context("row missing")
    }

    /// The rig's control table (breakers and leases), without faults.
    pub fn control(&self) -> DynamoControl {
        DynamoControl::new(&self.stack.sdk, &self.control_table)
    }

    async fn depth(&self, url: &str) -> Result<u64> {
        self.stack.queue_depth_at(url).await
    }

    /// Messages in the DLQ.
    pub async fn dlq_depth(&self) -> Result<u64> {
        self.depth(&self.dlq_url).await
    }

    /// Polls the queue like Lambda's event source mapping (batches of up to 10, delete what the
    /// handler did not report as failed) until the queue is empty.
    pub async fn drain(&self, processor: &Rig, timeout: Duration) -> Result<Drained> {
        self.poll(processor, timeout, usize::MAX).await
    }

    /// Polls like Lambda's poller until `receives` messages were handed to `processor` (fewer
    /// if the queue empties first).
    pub async fn receive_n(
        &self,
        processor: &Rig,
        receives: usize,
        timeout: Duration,
    ) -> Result<Drained> {
        self.poll(processor, timeout, receives).await
    }

    async fn poll(&self, processor: &Rig, timeout: Duration, limit: usize) -> Result<Drained> {
        let sqs = self.stack.sqs();
        let start = Instant::now();
        let mut seen = Drained::default();
        loop {
            if seen.receives >= limit {
                return Ok(seen);
            }
            if start.elapsed() > timeout {
                bail!("queue not drained within {timeout:?}: {seen:?}");
            }
            let batch = i32::try_from((limit - seen.receives).min(10)).unwrap_or(10);
            let out = sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(batch)
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await?;
            let received = out.messages.unwrap_or_default();
            if received.is_empty() {
                if self.depth(&self.queue_url).await? == 0 {
                    return Ok(seen);
                }
                continue;
            }
            let messages: Vec<Message> = received
                .iter()
                .map(|m| Message {
                    message_id: m.message_id.clone().unwrap_or_default(),
                    receipt_handle: m.receipt_handle.clone().unwrap_or_default(),
                    body: m.body.clone().unwrap_or_default(),
                    receive_count: m
                        .attributes
                        .as_ref()
                        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1),
                    deferred_since: None,
                })
                .collect();
            seen.receives += messages.len();
            seen.redeliveries += messages.iter().filter(|m| m.receive_count > 1).count();
            let failed = processor.handle_batch(&messages).await;
            for m in messages.iter().filter(|m| !failed.contains(&m.message_id)) {
                // A batch that outlived its visibility timeout has stale receipt handles: SQS has
                // already handed those messages to another poller (a duplicate delivery, as on AWS).
                let deleted = sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(&m.receipt_handle)
                    .send()
                    .await;
                match deleted {
                    Ok(_) => seen.deleted += 1,
                    Err(_) => seen.late_deletes += 1,
                }
            }
        }
    }
}
