//! The DynamoDB adapter for `CONTROL_TABLE`: circuit-breaker rows (`circuit#{stage}`) with
//! optimistic locking on `version`, processing leases (`lease#{stage}#{image_id}`) taken with a
//! conditional update that counts the takes since the last release and returns the previous row,
//! so a lease its own holder never released (a crashed or timed-out attempt, which marks
//! `out_of_time` before its deadline) is recognised. Leases carry `expires_at` (epoch seconds)
//! for TTL, but correctness never relies on TTL deletion: an expired lease is free by its
//! `until_ms`. The same table holds the throughput counters and the completed total
//! ([`throughput`]) and the migrations' run-once markers ([`markers`]).

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::aws::table::{self, batch_get, sdk_failure, written, written_or_conflict, Item, Table};
use crate::breaker::Breaker;
use crate::domain::{ImageId, Stage, Timestamp};
use crate::ports::{
    BreakerWrite, ControlStore, Holder, Lease, LeaseKey, LeaseRequest, LeaseView, RepoError,
};

mod markers;
mod throughput;

pub use throughput::{
    completed_key, throughput_key, COMPLETED_SEED, COMPLETED_SHARDS, THROUGHPUT_SHARDS,
};

/// The control table.
#[derive(Debug, Clone)]
pub struct DynamoControl {
    table: Table,
}

impl DynamoControl {
    /// An adapter on `table`.
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        DynamoControl {
            table: Table::new(config, table),
        }
    }
}

/// The key of the control table's item `value`.
fn pk(value: impl Into<String>) -> Item {
    table::key("pk", value)
}

/// The breaker row's key.
pub fn breaker_key(stage: Stage) -> String {
    format!("circuit#{stage}")
}

fn lease_key(stage: Stage, image: ImageId) -> String {
    format!("lease#{stage}#{image}")
}

/// The condition of a write to a lease by its holder: still the same message's same receive.
const HELD_BY: &str = "holder = :holder AND receive = :receive";

/// The values [`HELD_BY`] names for `holder`, with `more`.
fn held_by<const N: usize>(
    holder: &Holder<'_>,
    more: [(&str, AttributeValue); N],
) -> HashMap<String, AttributeValue> {
    [
        (":holder", AttributeValue::S(holder.message_id.to_owned())),
        (":receive", AttributeValue::N(holder.receive.to_string())),
    ]
    .into_iter()
    .chain(more)
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// A stored lease row, read leniently (a row from before takes were counted was taken once).
fn lease_view(item: &Item) -> LeaseView {
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

/// A versioned item (a breaker row, a migration marker): its key, its version and the value's
/// fields.
#[derive(Serialize, Deserialize)]
struct Versioned<T> {
    pk: String,
    version: u64,
    #[serde(flatten)]
    value: T,
}

impl DynamoControl {
    /// The value stored at `key` and its version, if there is one (a strongly consistent read).
    async fn load_versioned<T: DeserializeOwned>(
        &self,
        key: String,
        what: &'static str,
    ) -> Result<Option<(T, u64)>, RepoError> {
        let item = self.table.get(pk(key)).await.map_err(sdk_failure)?;
        item.map(|item| {
            let row: Versioned<T> =
                serde_dynamo::from_item(item).map_err(|e| RepoError::malformed(what, e))?;
            Ok((row.value, row.version))
        })
        .transpose()
    }

    /// Puts `value` at `key` if its stored version is still `expected_version` (absent when 0);
    /// `Conflict` when another writer got there first.
    async fn save_versioned<T: Serialize>(
        &self,
        key: String,
        value: &T,
        expected_version: u64,
        what: &'static str,
    ) -> Result<(), RepoError> {
        let row = Versioned {
            pk: key,
            version: expected_version + 1,
            value,
        };
        let item: Item = serde_dynamo::to_item(&row).map_err(|e| RepoError::malformed(what, e))?;
        let put = self.table.put().set_item(Some(item));
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
        written_or_conflict(put.send().await)
    }

    /// The items with these keys (absent ones are left out), by key.
    async fn batch_get(&self, keys: &[String]) -> Result<HashMap<String, Item>, RepoError> {
        let items = batch_get(&self.table, "pk", keys).await?;
        Ok(items
            .into_iter()
            .filter_map(|item| match item.get("pk") {
                Some(AttributeValue::S(pk)) => Some((pk.clone(), item)),
                _ => None,
            })
            .collect())
    }
}

impl ControlStore for DynamoControl {
    async fn load_breaker(&self, stage: Stage) -> Result<(Breaker, u64), RepoError> {
        crate::metrics::breaker_read(stage);
        Ok(self
            .load_versioned(breaker_key(stage), "a breaker")
            .await?
            .unwrap_or_default())
    }

    async fn save_breaker(&self, write: BreakerWrite<'_>) -> Result<(), RepoError> {
        let (key, expected) = (breaker_key(write.stage), write.expected_version);
        self.save_versioned(key, write.breaker, expected, "a breaker")
            .await
    }

    async fn acquire_lease(&self, request: &LeaseRequest<'_>) -> Result<Lease, RepoError> {
        let (holder, until, now) = (request.holder, request.until, request.now);
        let LeaseKey { stage, image } = request.lease;
        // One conditional update when the lease is free or run out: take it, count the takes
        // since the last release (a release deletes the item), clear the previous holder's
        // out-of-time mark, return the old row. A live lease is only read, to tell a duplicate
        // of this very message from another message's attempt.
        let result = self
            .table
            .update(pk(lease_key(stage, image)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
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
            .table
            .update(pk(lease_key(stage, image)))
            .update_expression("SET out_of_time = :yes")
            .condition_expression(HELD_BY)
            .set_expression_attribute_values(Some(held_by(
                holder,
                [(":yes", AttributeValue::Bool(true))],
            )))
            .send()
            .await;
        // Refused when released meanwhile, or someone else's now: nothing of ours to mark.
        written(result).map(drop)
    }

    async fn lease(&self, lease: LeaseKey) -> Result<Option<LeaseView>, RepoError> {
        let LeaseKey { stage, image } = lease;
        let item = self
            .table
            .get(pk(lease_key(stage, image)))
            .await
            .map_err(sdk_failure)?;
        Ok(item.as_ref().map(lease_view))
    }

    async fn release_lease(&self, lease: LeaseKey, holder: &Holder<'_>) -> Result<(), RepoError> {
        let LeaseKey { stage, image } = lease;
        let result = self
            .table
            .delete(pk(lease_key(stage, image)))
            .condition_expression(HELD_BY)
            .set_expression_attribute_values(Some(held_by(holder, [])))
            .send()
            .await;
        // Refused when someone else took it over after ours expired: nothing of ours to release.
        written(result).map(drop)
    }
}
