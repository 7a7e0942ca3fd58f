//! `ThroughputLog` in the control table: the per-minute counters (`throughput#{minute}#{shard}`,
//! 16 shards, atomic `ADD`, kept 2 h) and the completed total (`completed#{n}`, atomic `ADD`
//! over 16 items, plus `completed#seed`, set once by the backfill).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{pk, DynamoControl};
use crate::aws::table::{sdk_failure, Item};
use crate::domain::Timestamp;
use crate::ops::{minute_start, recent_minutes};
use crate::ports::{MinuteCount, Outcome, RepoError, ThroughputLog};

/// How long a throughput counter is kept (the chart shows an hour).
const THROUGHPUT_TTL_SECS: i64 = 2 * 3600;

/// How many items one minute's throughput counts are spread over: every completion and failure
/// ADDs to one of them, so at 10,000 images/s no item takes more than ~625 writes/s (DynamoDB's
/// partition limit is 1000 WCU/s); the chart sums them.
pub const THROUGHPUT_SHARDS: u32 = 16;

/// The key of one shard of the throughput counters of the minute starting at `minute`.
pub fn throughput_key(minute: Timestamp, shard: u32) -> String {
    format!("throughput#{minute}#{shard}")
}

/// Items the completed total is spread over: at 100x the design point (10 000 completions/s)
/// each takes ~625 writes/s, under DynamoDB's 1000 WCU/s per partition.
pub const COMPLETED_SHARDS: i64 = 16;

/// The key of shard `n` of the completed total.
pub fn completed_key(n: i64) -> String {
    format!("completed#{n}")
}

/// The key of the completed total's seed (the completed rows from before the counter, as the
/// backfill found them, minus those the counter had already counted).
pub const COMPLETED_SEED: &str = "completed#seed";

/// A counter's value (0 when absent or unreadable).
pub(super) fn number(item: &Item, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}

impl DynamoControl {
    /// The completed total's items that exist (its shards and its seed), by key.
    pub(super) async fn completed_items(&self) -> Result<HashMap<String, Item>, RepoError> {
        let mut keys: Vec<String> = (0..COMPLETED_SHARDS).map(completed_key).collect();
        keys.push(COMPLETED_SEED.to_owned());
        self.batch_get(&keys).await
    }
}

impl ThroughputLog for DynamoControl {
    async fn count(&self, at: Timestamp, outcome: Outcome) -> Result<(), RepoError> {
        let minute = minute_start(at);
        // Any shard will do: the counts are only ever summed.
        let shard = ((crate::retry::jitter() * f64::from(THROUGHPUT_SHARDS)) as u32)
            .min(THROUGHPUT_SHARDS - 1);
        let field = match outcome {
            Outcome::Processed => "processed",
            Outcome::Failed => "failed",
        };
        let per_minute = async {
            self.table
                .update(pk(throughput_key(minute, shard)))
                .update_expression("ADD #f :one SET expires_at = :exp")
                .expression_attribute_names("#f", field)
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(
                    ":exp",
                    AttributeValue::N((minute.unix_seconds() + THROUGHPUT_TTL_SECS).to_string()),
                )
                .send()
                .await
                .map_err(sdk_failure)?;
            Ok::<_, RepoError>(())
        };
        // The completed total: one more ADD, on the shard of the millisecond (completions
        // spread evenly over the 16 items); `since` records when the counting began (for
        // operators).
        let total = async {
            if outcome != Outcome::Processed {
                return Ok(());
            }
            self.table
                .update(pk(completed_key(
                    at.unix_millis().rem_euclid(COMPLETED_SHARDS),
                )))
                .update_expression("ADD n :one SET since = if_not_exists(since, :at)")
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(":at", AttributeValue::S(at.to_string()))
                .send()
                .await
                .map_err(sdk_failure)?;
            Ok::<_, RepoError>(())
        };
        futures::try_join!(per_minute, total)?;
        Ok(())
    }

    async fn recent(&self, now: Timestamp, minutes: u32) -> Result<Vec<MinuteCount>, RepoError> {
        let wanted: Vec<Timestamp> = recent_minutes(now, minutes).collect();
        let keys: Vec<String> = wanted
            .iter()
            .flat_map(|m| (0..THROUGHPUT_SHARDS).map(|shard| throughput_key(*m, shard)))
            .collect();
        let found = self.batch_get(&keys).await?;
        Ok(MinuteCount::tally(wanted, |minute| {
            let shards: Vec<&Item> = (0..THROUGHPUT_SHARDS)
                .filter_map(|shard| found.get(&throughput_key(minute, shard)))
                .collect();
            let sum = |field: &str| shards.iter().map(|item| number(item, field)).sum();
            (sum("processed"), sum("failed"))
        }))
    }

    async fn completed_total(&self) -> Result<u64, RepoError> {
        let found = self.completed_items().await?;
        let counted: u64 = found
            .iter()
            .filter(|(k, _)| k.as_str() != COMPLETED_SEED)
            .map(|(_, item)| number(item, "n"))
            .sum();
        let seed = found
            .get(COMPLETED_SEED)
            .and_then(|item| item.get("n"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        Ok(u64::try_from(i128::from(counted) + i128::from(seed)).unwrap_or(0))
    }
}
