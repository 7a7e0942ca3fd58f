//! The SQS adapter: `JobQueue` on the thumbnails and variants queues, and `QueueAdmin` on them
//! and their dead-letter queues (depths, and the receive / send / delete redrive that works on
//! AWS and the emulator alike; the emulator lacks `StartMessageMoveTask`).

use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;

use crate::domain::{RetryMessage, Stage};
use crate::ports::{
    DeadLetter, DeadLetterReceive, JobQueue, QueueAdmin, QueueDepth, QueueError, Receipt, Requeue,
};
use crate::processing::Message;

/// SQS's longest message delay (15 minutes).
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

/// SQS's longest visibility timeout (12 hours).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// SQS's longest receive wait (a long poll of 20 seconds).
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// The two processing queues.
#[derive(Debug, Clone)]
pub struct SqsQueues {
    client: Client,
    thumbnails_url: Option<String>,
    variants_url: Option<String>,
    thumbnails_dlq_url: Option<String>,
    variants_dlq_url: Option<String>,
}

impl SqsQueues {
    /// Queues by URL; a function that only uses one may leave the other out.
    pub fn new(
        config: &SdkConfig,
        thumbnails_url: Option<String>,
        variants_url: Option<String>,
    ) -> Self {
        SqsQueues {
            client: Client::new(config),
            thumbnails_url,
            variants_url,
            thumbnails_dlq_url: None,
            variants_dlq_url: None,
        }
    }

    /// Adds the stages' dead-letter queues (for `QueueAdmin`).
    pub fn with_dead_letter_queues(
        mut self,
        thumbnails_dlq_url: Option<String>,
        variants_dlq_url: Option<String>,
    ) -> Self {
        self.thumbnails_dlq_url = thumbnails_dlq_url;
        self.variants_dlq_url = variants_dlq_url;
        self
    }

    fn dlq_url(&self, stage: Stage) -> Result<&str, QueueError> {
        match stage {
            Stage::Thumbnail => self.thumbnails_dlq_url.as_deref(),
            Stage::Variant => self.variants_dlq_url.as_deref(),
        }
        .ok_or(QueueError::NotConfigured(stage))
    }

    fn url(&self, stage: Stage) -> Result<&str, QueueError> {
        match stage {
            Stage::Thumbnail => self.thumbnails_url.as_deref(),
            Stage::Variant => self.variants_url.as_deref(),
        }
        .ok_or(QueueError::NotConfigured(stage))
    }
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> QueueError {
    QueueError::Unavailable(Box::new(e))
}

impl JobQueue for SqsQueues {
    async fn enqueue(&self, message: &RetryMessage) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).map_err(unavailable)?;
        self.client
            .send_message()
            .queue_url(self.url(message.stage)?)
            .message_body(body)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn delay(&self, receipt: Receipt<'_>, delay: Duration) -> Result<(), QueueError> {
        let secs = delay.min(MAX_VISIBILITY).as_secs();
        self.client
            .change_message_visibility()
            .queue_url(self.url(receipt.stage)?)
            .receipt_handle(receipt.handle)
            .visibility_timeout(i32::try_from(secs).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn requeue(&self, copy: &Requeue<'_>) -> Result<(), QueueError> {
        let secs = copy.delay.min(MAX_DELAY).as_secs();
        let mut send = self
            .client
            .send_message()
            .queue_url(self.url(copy.stage)?)
            .message_body(copy.body)
            .delay_seconds(i32::try_from(secs).unwrap_or(0));
        if let Some(since) = copy.deferred_since {
            let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(since.to_string())
                .build()
                .map_err(unavailable)?;
            send = send.message_attributes(DEFERRED_SINCE, attribute);
        }
        send.send().await.map_err(unavailable)?;
        Ok(())
    }
}

impl QueueAdmin for SqsQueues {
    async fn depth(&self, stage: Stage, dead_letters: bool) -> Result<QueueDepth, QueueError> {
        let url = if dead_letters {
            self.dlq_url(stage)?
        } else {
            self.url(stage)?
        };
        let attrs = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(unavailable)?
            .attributes
            .unwrap_or_default();
        let n = |name: &QueueAttributeName| {
            attrs
                .get(name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(QueueDepth {
            visible: n(&QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: n(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: n(&QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        })
    }

    async fn receive_dead_letters(
        &self,
        request: &DeadLetterReceive,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(self.dlq_url(request.stage)?)
            .max_number_of_messages(i32::try_from(request.max.clamp(1, 10)).unwrap_or(10))
            .visibility_timeout(
                i32::try_from(request.hide_for.min(MAX_VISIBILITY).as_secs()).unwrap_or(i32::MAX),
            )
            .wait_time_seconds(i32::try_from(request.wait.min(MAX_WAIT).as_secs()).unwrap_or(0))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| DeadLetter {
                message_id: m.message_id.unwrap_or_default(),
                receipt_handle: m.receipt_handle.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
            })
            .collect())
    }

    async fn delete_dead_letter(&self, receipt: Receipt<'_>) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(self.dlq_url(receipt.stage)?)
            .receipt_handle(receipt.handle)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn release_dead_letter(&self, receipt: Receipt<'_>) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(self.dlq_url(receipt.stage)?)
            .receipt_handle(receipt.handle)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// The messages of an SQS event, as the processing pipeline sees them.
pub fn messages(event: &SqsEvent) -> Vec<Message> {
    event
        .records
        .iter()
        .map(|r| Message {
            message_id: r.message_id.clone().unwrap_or_default(),
            receipt_handle: r.receipt_handle.clone().unwrap_or_default(),
            body: r.body.clone().unwrap_or_default(),
            receive_count: r
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
            deferred_since: r
                .message_attributes
                .get(DEFERRED_SINCE)
                .and_then(|a| a.string_value.as_deref())
                .and_then(|t| t.parse().ok()),
        })
        .collect()
}

/// The message attribute a deferred copy carries: when its chain of deferrals began.
pub const DEFERRED_SINCE: &str = "safelight-deferred-since";

/// The partial-batch answer: the ids of the messages that must stay in the queue.
pub fn batch_response(failed: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.set_failures(failed);
    response
}
