//! The DynamoDB adapter for `CONTROL_TABLE`: circuit-breaker rows (`circuit#{stage}`) with
//! optimistic locking on `version`, and processing leases (`lease#{stage}#{image_id}`) taken
//! with a conditional put. Leases carry `expires_at` (epoch seconds) for TTL, but correctness
//! never relies on TTL deletion: an expired lease is free by its `until_ms`.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::faults::Faults;
use crate::breaker::Breaker;
use crate::domain::{ImageId, Stage, Timestamp};
use crate::ports::{ControlStore, RepoError};

/// The control table.
#[derive(Debug, Clone)]
pub struct DynamoControl {
    client: Client,
    table: String,
    faults: Faults,
}

impl DynamoControl {
    /// An adapter on `table`.
    pub fn new(config: &SdkConfig, table: impl Into<String>, faults: Faults) -> Self {
        DynamoControl {
            client: Client::new(config),
            table: table.into(),
            faults,
        }
    }
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> RepoError {
    RepoError::Unavailable(Box::new(e))
}

/// The breaker row's key.
pub fn breaker_key(stage: Stage) -> String {
    format!("circuit#{stage}")
}

fn lease_key(stage: Stage, image: ImageId) -> String {
    format!("lease#{stage}#{image}")
}

#[derive(serde::Serialize, serde::Deserialize)]
struct BreakerRow {
    pk: String,
    version: u64,
    #[serde(flatten)]
    breaker: Breaker,
}

impl ControlStore for DynamoControl {
    async fn load_breaker(&self, stage: Stage) -> Result<(Breaker, u64), RepoError> {
        self.faults.check("ddb_get").map_err(unavailable)?;
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(breaker_key(stage)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        match out.item {
            None => Ok((Breaker::default(), 0)),
            Some(item) => {
                let row: BreakerRow = serde_dynamo::from_item(item)
                    .map_err(|e| RepoError::Malformed(e.to_string()))?;
                Ok((row.breaker, row.version))
            }
        }
    }

    async fn save_breaker(
        &self,
        stage: Stage,
        breaker: &Breaker,
        expected_version: u64,
    ) -> Result<(), RepoError> {
        let row = BreakerRow {
            pk: breaker_key(stage),
            version: expected_version + 1,
            breaker: breaker.clone(),
        };
        let item = serde_dynamo::to_item(&row).map_err(|e| RepoError::Malformed(e.to_string()))?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        put = if expected_version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("#v = :expected")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(
                    ":expected",
                    AttributeValue::N(expected_version.to_string()),
                )
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Err(RepoError::Conflict)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn acquire_lease(
        &self,
        stage: Stage,
        image: ImageId,
        holder: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, RepoError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(lease_key(stage, image)))
            .item("holder", AttributeValue::S(holder.to_owned()))
            .item(
                "until_ms",
                AttributeValue::N(until.unix_millis().to_string()),
            )
            .item(
                "expires_at",
                AttributeValue::N((until.unix_seconds() + 3600).to_string()),
            )
            .condition_expression("attribute_not_exists(pk) OR until_ms < :now OR holder = :holder")
            .expression_attribute_values(":now", AttributeValue::N(now.unix_millis().to_string()))
            .expression_attribute_values(":holder", AttributeValue::S(holder.to_owned()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn release_lease(
        &self,
        stage: Stage,
        image: ImageId,
        holder: &str,
    ) -> Result<(), RepoError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(lease_key(stage, image)))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", AttributeValue::S(holder.to_owned()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Someone else took it over after ours expired: nothing of ours to release.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}
