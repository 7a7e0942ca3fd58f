//! The DynamoDB adapter for the per-owner request counters in `CONTROL_TABLE`: one item per
//! (owner, fixed window), `rate#upload#{owner}#{window start, epoch seconds}` with a `requests`
//! count. A request is counted by one conditional `UpdateItem` (`ADD`, only while the count is
//! under the limit), never read first; a full window answers `ConditionalCheckFailed` and
//! nothing is written. The item carries `expires_at` (TTL, a minute after its window ends), and
//! no reader ever looks at a past window's key, so a TTL that runs late changes nothing.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;

use super::table::{self, written, Table};

use crate::domain::{OwnerId, Timestamp};
use crate::ports::{RateCounter, RepoError};

/// The request counters in the control table.
#[derive(Debug, Clone)]
pub struct DynamoRates {
    table: Table,
}

impl DynamoRates {
    /// An adapter on `table` (the control table).
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        DynamoRates {
            table: Table::new(config, table),
        }
    }
}

/// The counter's key: owner ids cannot contain `#`.
pub fn rate_key(owner: &OwnerId, window_start: Timestamp) -> String {
    format!("rate#upload#{owner}#{}", window_start.unix_seconds())
}

impl RateCounter for DynamoRates {
    async fn take(
        &self,
        owner: &OwnerId,
        window_start: Timestamp,
        window: Duration,
        limit: u32,
    ) -> Result<bool, RepoError> {
        let window_secs = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        let expires_at = window_start
            .plus_secs(window_secs.saturating_mul(2))
            .unix_seconds();
        let result = self
            .table
            .update(table::key("pk", rate_key(owner, window_start)))
            .update_expression("ADD requests :one SET expires_at = :exp")
            .condition_expression("attribute_not_exists(requests) OR requests < :limit")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
            .expression_attribute_values(":exp", AttributeValue::N(expires_at.to_string()))
            .send()
            .await;
        written(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_key_names_the_owner_and_its_window() {
        let owner: OwnerId = "u1".parse().unwrap();
        let start = Timestamp::from_unix_millis(1_700_000_040_000);
        assert_eq!(rate_key(&owner, start), "rate#upload#u1#1700000040");
    }
}
