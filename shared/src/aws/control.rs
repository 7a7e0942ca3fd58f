//! The DynamoDB adapter for `CONTROL_TABLE`: circuit-breaker rows (`circuit#{stage}`) with
//! optimistic locking on `version`, processing leases (`lease#{stage}#{image_id}`) taken with a
//! conditional update that counts the takes since the last release and returns the previous row,
//! so a lease its own holder never released (a crashed or timed-out attempt, which marks
//! `out_of_time` before its deadline) is recognised. Leases carry `expires_at` (epoch seconds) for TTL, but
//! correctness never relies on TTL deletion: an expired lease is free by its `until_ms`. Also the
//! per-minute throughput counters (`throughput#{minute}#{shard}`, 16 shards, atomic `ADD`, kept
//! 2 h), the completed
//! total (`completed#{n}`, atomic `ADD` over 16 items, and `completed#seed`, set once), and the
//! migrations' run-once markers (`migration#{name}`, conditional puts on `version`).

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::dynamodb::{batch_get, sdk_failure};
use crate::breaker::Breaker;
use crate::domain::Marker;
use crate::domain::{ImageId, Stage, Timestamp};
use crate::ops::{minute_start, recent_minutes};
use crate::ports::{
    ControlStore, Holder, Lease, LeaseKey, LeaseRequest, LeaseView, MarkerStore, MinuteCount,
    Outcome, RepoError, ThroughputLog,
};

/// The control table.
#[derive(Debug, Clone)]
pub struct DynamoControl {
    client: Client,
    table: String,
}

impl DynamoControl {
    /// An adapter on `table`.
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        DynamoControl {
            client: Client::new(config),
            table: table.into(),
        }
    }
}

/// The breaker row's key.
pub fn breaker_key(stage: Stage) -> String {
    format!("circuit#{stage}")
}

fn lease_key(stage: Stage, image: ImageId) -> String {
    format!("lease#{stage}#{image}")
}

/// A stored lease row, read leniently (a row from before takes were counted was taken once).
fn lease_view(item: &HashMap<String, AttributeValue>) -> LeaseView {
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
    };
    LeaseView {
        holder: item
            .get("holder")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default(),
        receive: number("receive")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        until: Timestamp::from_unix_millis(number("until_ms").unwrap_or(0)),
        attempts: number("taken")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1)
            .max(1),
        ran_out_of_time: item
            .get("out_of_time")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct BreakerRow {
    pk: String,
    version: u64,
    #[serde(flatten)]
    breaker: Breaker,
}

/// How long a throughput counter is kept (the chart shows an hour).
const THROUGHPUT_TTL_SECS: i64 = 2 * 3600;

/// How many items one minute's throughput counts are spread over: every completion and failure
/// ADDs to one of them, so at 10,000 images/s no item takes more than ~625 writes/s (DynamoDB's
/// partition limit is 1000 WCU/s); the chart sums them.
pub const THROUGHPUT_SHARDS: u32 = 16;

/// BatchGetItem's most keys per request.
const BATCH_GET_KEYS: usize = 100;

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

impl DynamoControl {
    /// Puts a versioned item (a breaker row, a migration marker) if its stored version is still
    /// `expected_version` (absent when 0); `Conflict` when another writer got there first.
    async fn put_versioned(
        &self,
        item: HashMap<String, AttributeValue>,
        expected_version: u64,
    ) -> Result<(), RepoError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = if expected_version == 0 {
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
            Err(e) => Err(sdk_failure(e)),
        }
    }

    /// The items with these keys (absent ones are left out), by key.
    async fn batch_get(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, HashMap<String, AttributeValue>>, RepoError> {
        let items = batch_get(&self.client, &self.table, "pk", keys).await?;
        Ok(items
            .into_iter()
            .filter_map(|item| match item.get("pk") {
                Some(AttributeValue::S(pk)) => Some((pk.clone(), item)),
                _ => None,
            })
            .collect())
    }
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
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
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(throughput_key(minute, shard)))
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
            self.client
                .update_item()
                .table_name(&self.table)
                .key(
                    "pk",
                    AttributeValue::S(completed_key(at.unix_millis().rem_euclid(COMPLETED_SHARDS))),
                )
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
        let mut found = HashMap::new();
        for chunk in keys.chunks(BATCH_GET_KEYS) {
            found.extend(self.batch_get(chunk).await?);
        }
        Ok(MinuteCount::tally(wanted, |minute| {
            (0..THROUGHPUT_SHARDS)
                .filter_map(|shard| found.get(&throughput_key(minute, shard)))
                .map(|item| (number(item, "processed"), number(item, "failed")))
                .fold((0, 0), |(p, f), (dp, df)| (p + dp, f + df))
        }))
    }

    async fn completed_total(&self) -> Result<u64, RepoError> {
        let mut keys: Vec<String> = (0..COMPLETED_SHARDS).map(completed_key).collect();
        keys.push(COMPLETED_SEED.to_owned());
        let found = self.batch_get(&keys).await?;
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

#[derive(serde::Serialize, serde::Deserialize)]
struct MarkerRow {
    pk: String,
    version: u64,
    #[serde(flatten)]
    marker: Marker,
}

impl MarkerStore for DynamoControl {
    async fn completed_counted(&self) -> Result<Option<u64>, RepoError> {
        let mut keys: Vec<String> = (0..COMPLETED_SHARDS).map(completed_key).collect();
        keys.push(COMPLETED_SEED.to_owned());
        let found = self.batch_get(&keys).await?;
        if found.contains_key(COMPLETED_SEED) {
            return Ok(None);
        }
        Ok(Some(found.values().map(|item| number(item, "n")).sum()))
    }

    async fn seed_completed(&self, seed: i64) -> Result<bool, RepoError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(COMPLETED_SEED.to_owned()))
            .item("n", AttributeValue::N(seed.to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        super::dynamodb::written(result)
    }

    async fn load_marker(&self, name: &str) -> Result<Option<(Marker, u64)>, RepoError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("migration#{name}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_failure)?;
        out.item
            .map(|item| {
                let row: MarkerRow = serde_dynamo::from_item(item)
                    .map_err(|e| RepoError::malformed("a migration marker", e))?;
                Ok((row.marker, row.version))
            })
            .transpose()
    }

    async fn save_marker(
        &self,
        name: &str,
        marker: &Marker,
        expected_version: u64,
    ) -> Result<(), RepoError> {
        let row = MarkerRow {
            pk: format!("migration#{name}"),
            version: expected_version + 1,
            marker: marker.clone(),
        };
        let item = serde_dynamo::to_item(&row)
            .map_err(|e| RepoError::malformed("a migration marker", e))?;
        self.put_versioned(item, expected_version).await
    }
}

impl ControlStore for DynamoControl {
    async fn load_breaker(&self, stage: Stage) -> Result<(Breaker, u64), RepoError> {
        crate::metrics::breaker_read(stage);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(breaker_key(stage)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_failure)?;
        match out.item {
            None => Ok((Breaker::default(), 0)),
            Some(item) => {
                let row: BreakerRow = serde_dynamo::from_item(item)
                    .map_err(|e| RepoError::malformed("a breaker", e))?;
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
        let item = serde_dynamo::to_item(&row).map_err(|e| RepoError::malformed("a breaker", e))?;
        self.put_versioned(item, expected_version).await
    }

    async fn acquire_lease(&self, request: &LeaseRequest<'_>) -> Result<Lease, RepoError> {
        let (holder, until, now) = (request.holder, request.until, request.now);
        let LeaseKey { stage, image } = request.lease;
        // One conditional update when the lease is free or run out: take it, count the takes
        // since the last release (a release deletes the item), clear the previous holder's
        // out-of-time mark, return the old row. A live lease is only read, to tell a duplicate
        // of this very message from another message's attempt.
        let result = self
            .client
            .update_item()
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .table_name(&self.table)
            .key("pk", AttributeValue::S(lease_key(stage, image)))
            .update_expression(
                "SET holder = :holder, receive = :receive, until_ms = :until, expires_at = :expires, \
                 taken = if_not_exists(taken, :zero) + :one REMOVE out_of_time",
            )
            .condition_expression("attribute_not_exists(pk) OR until_ms < :now")
            .expression_attribute_values(
                ":holder",
                AttributeValue::S(holder.message_id.to_owned()),
            )
            .expression_attribute_values(":receive", AttributeValue::N(holder.receive.to_string()))
            .expression_attribute_values(
                ":until",
                AttributeValue::N(until.unix_millis().to_string()),
            )
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((until.unix_seconds() + 3600).to_string()),
            )
            .expression_attribute_values(":zero", AttributeValue::N("0".to_owned()))
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .expression_attribute_values(":now", AttributeValue::N(now.unix_millis().to_string()))
            .send()
            .await;
        match result {
            Ok(out) => {
                let Some(old) = out.attributes.as_ref().filter(|a| !a.is_empty()) else {
                    return Ok(Lease::Taken);
                };
                let view = lease_view(old);
                Ok(if view.holder == holder.message_id {
                    Lease::Abandoned {
                        attempts: view.attempts,
                        ran_out_of_time: view.ran_out_of_time,
                    }
                } else {
                    Lease::Taken
                })
            }
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(match self.lease(request.lease).await? {
                    Some(live) if live.holder == holder.message_id => {
                        Lease::Running { until: live.until }
                    }
                    // Released in between: the next receive finds it free.
                    _ => Lease::HeldElsewhere,
                })
            }
            Err(e) => Err(sdk_failure(e)),
        }
    }

    async fn mark_out_of_time(
        &self,
        lease: LeaseKey,
        holder: &Holder<'_>,
    ) -> Result<(), RepoError> {
        let LeaseKey { stage, image } = lease;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(lease_key(stage, image)))
            .update_expression("SET out_of_time = :yes")
            .condition_expression("holder = :holder AND receive = :receive")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":holder", AttributeValue::S(holder.message_id.to_owned()))
            .expression_attribute_values(":receive", AttributeValue::N(holder.receive.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Released meanwhile, or someone else's now: nothing of ours to mark.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(sdk_failure(e)),
        }
    }

    async fn lease(&self, lease: LeaseKey) -> Result<Option<LeaseView>, RepoError> {
        let LeaseKey { stage, image } = lease;
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(lease_key(stage, image)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_failure)?;
        Ok(out.item.as_ref().map(lease_view))
    }

    async fn release_lease(&self, lease: LeaseKey, holder: &Holder<'_>) -> Result<(), RepoError> {
        let LeaseKey { stage, image } = lease;
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(lease_key(stage, image)))
            .condition_expression("holder = :holder AND receive = :receive")
            .expression_attribute_values(":holder", AttributeValue::S(holder.message_id.to_owned()))
            .expression_attribute_values(":receive", AttributeValue::N(holder.receive.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Someone else took it over after ours expired: nothing of ours to release.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(sdk_failure(e)),
        }
    }
}
