//! The notices table (pk `owner_id`, sk `seq`) holds three kinds of rows:
//! - notices: `owner_id` = the owner, `seq` >= 1, `type`, `image_id`, `notice` (the JSON frame as
//!   sent), `expires_at` (24 h);
//! - the owner's counter: `owner_id` = the owner, `seq` = 0, `last_seq` (`ADD` makes it atomic);
//!   it never expires, so sequence numbers never restart under a client's feet;
//! - delivery records: `owner_id` = `delivery#{key}`, `seq` = 0, `owner`, `notice`, `delivered`
//!   (list of connection ids), `done`, `expires_at` (25 h). Owner ids cannot contain `#`, so the
//!   two key spaces never meet, and the replay query (`seq > since >= 0`) never sees a counter.
//!
//! Reads treat rows whose `expires_at` has passed as absent: TTL deletion is lazy on AWS and not
//! done at all by the local emulator.

use std::collections::{BTreeSet, HashMap};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde::{Deserialize, Serialize};

use super::{expired, from_item, to_item, unavailable};
use crate::aws::table::{self, Item, Pages, Put, Table};
use crate::domain::{ImageId, Notice, OwnerId, Timestamp};
use crate::ports::{Delivery, LogEntry, NoticeLog, Progress, RealtimeError, Replay, ReplayQuery};

/// A delivery record of the notices table.
#[derive(Debug, Serialize, Deserialize)]
struct DeliveryRow {
    /// `delivery#{key}`.
    owner_id: String,
    /// Always 0.
    seq: u64,
    owner: OwnerId,
    /// The notice's JSON frame.
    notice: String,
    #[serde(default)]
    delivered: BTreeSet<String>,
    #[serde(default)]
    done: bool,
    /// TTL, epoch seconds.
    expires_at: i64,
}

impl DeliveryRow {
    fn new(key: &str, d: &Delivery) -> Result<Self, RealtimeError> {
        Ok(DeliveryRow {
            owner_id: delivery_pk(key),
            seq: 0,
            owner: d.owner.clone(),
            notice: notice_json(&d.notice)?,
            delivered: d.delivered.clone(),
            done: d.done,
            expires_at: d.expires_at.unix_seconds(),
        })
    }
}

fn delivery_from_item(item: Item) -> Result<Delivery, RealtimeError> {
    let row: DeliveryRow = from_item("a delivery record", item)?;
    Ok(Delivery {
        owner: row.owner,
        notice: notice_from_json(&row.notice)?,
        delivered: row.delivered,
        done: row.done,
        expires_at: Timestamp::from_unix_millis(row.expires_at.saturating_mul(1000)),
    })
}

/// A notice of the notices table.
#[derive(Debug, Serialize)]
struct NoticeRow<'a> {
    owner_id: &'a OwnerId,
    seq: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    image_id: ImageId,
    /// The JSON frame as sent.
    notice: String,
    /// TTL, epoch seconds.
    expires_at: i64,
    /// When it reached the log (epoch milliseconds): a resume finds notices numbered before
    /// another but stored after it.
    stored_at: i64,
}

/// A row of an owner's slice of the notices table as a replay reads it: a notice, or the
/// counter (seq 0, no `notice`).
#[derive(Debug, Deserialize)]
struct LoggedRow {
    seq: u64,
    notice: Option<String>,
    stored_at: Option<i64>,
    expires_at: Option<i64>,
}

/// The owner's counter row, as `ADD` leaves it.
#[derive(Debug, Deserialize)]
struct CounterRow {
    last_seq: u64,
}

/// The notices table: counters, the replay log and delivery records.
#[derive(Debug, Clone)]
pub struct DynamoNotices {
    table: Table,
}

impl DynamoNotices {
    /// A log on `table`.
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        DynamoNotices {
            table: Table::new(config, table),
        }
    }

    async fn read_delivery(&self, key: &str) -> Result<Option<Delivery>, RealtimeError> {
        let item = self
            .table
            .get(seq_zero(delivery_pk(key)))
            .await
            .map_err(unavailable)?;
        item.map(delivery_from_item).transpose()
    }
}

fn delivery_pk(key: &str) -> String {
    format!("delivery#{key}")
}

/// The key of the row with `seq` 0 in the partition `owner_id`: an owner's counter, or (with
/// [`delivery_pk`]) a delivery record.
fn seq_zero(owner_id: String) -> Item {
    HashMap::from([
        ("owner_id".to_owned(), AttributeValue::S(owner_id)),
        ("seq".to_owned(), AttributeValue::N("0".into())),
    ])
}

fn notice_json(notice: &Notice) -> Result<String, RealtimeError> {
    serde_json::to_string(notice).map_err(|e| RealtimeError::malformed("a notice frame", e))
}

fn notice_from_json(json: &str) -> Result<Notice, RealtimeError> {
    serde_json::from_str(json).map_err(|e| RealtimeError::malformed("a notice frame", e))
}

impl NoticeLog for DynamoNotices {
    async fn next_seq(&self, owner: &OwnerId) -> Result<u64, RealtimeError> {
        let out = self
            .table
            .update(seq_zero(owner.to_string()))
            .update_expression("ADD last_seq :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(unavailable)?;
        let counter: CounterRow =
            from_item("a notice counter", out.attributes.unwrap_or_default())?;
        Ok(counter.last_seq)
    }

    async fn claim(&self, key: &str, d: &Delivery) -> Result<Delivery, RealtimeError> {
        let result = self
            .table
            .put()
            .set_item(Some(to_item(
                "a delivery record",
                &DeliveryRow::new(key, d)?,
            )?))
            .condition_expression("attribute_not_exists(owner_id)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match table::put_or_current(result, unavailable)? {
            Put::Written => Ok(d.clone()),
            // The record that won comes back with the refusal; a store that does not return it
            // is read.
            Put::Refused(Some(won)) => delivery_from_item(won),
            Put::Refused(None) => self.read_delivery(key).await?.ok_or_else(|| {
                RealtimeError::malformed(
                    "a delivery record",
                    "it vanished between the claim and the read",
                )
            }),
        }
    }

    async fn record_progress(
        &self,
        key: &str,
        progress: &Progress<'_>,
    ) -> Result<(), RealtimeError> {
        let Progress { delivered, done } = *progress;
        self.table
            .update(seq_zero(delivery_pk(key)))
            .update_expression("SET delivered = :delivered, done = :done")
            .condition_expression("attribute_exists(owner_id)")
            .expression_attribute_values(
                ":delivered",
                serde_dynamo::to_attribute_value(delivered)
                    .map_err(|e| RealtimeError::malformed("a delivery record", e))?,
            )
            .expression_attribute_values(":done", AttributeValue::Bool(done))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn append(&self, entry: &LogEntry<'_>) -> Result<(), RealtimeError> {
        let (owner, notice, expires_at) = (entry.owner, entry.notice, entry.expires_at);
        if notice.seq == 0 {
            return Err(RealtimeError::malformed(
                "a notice",
                "seq 0 is the counter row, not a notice",
            ));
        }
        let row = NoticeRow {
            owner_id: owner,
            seq: notice.seq,
            kind: notice.kind.as_str(),
            image_id: notice.image_id,
            notice: notice_json(notice)?,
            expires_at: expires_at.unix_seconds(),
            stored_at: Timestamp::now().unix_millis(),
        };
        self.table
            .put()
            .set_item(Some(to_item("a notice", &row)?))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn since(&self, query: &ReplayQuery<'_>) -> Result<Replay, RealtimeError> {
        let (owner, after, now, limit) = (query.owner, query.after, query.now, query.limit);
        // From LATE_LOOKBACK below `after` (and `after` itself, for its stored_at), then at most
        // one page and one more notice: a resume reads a bounded slice of the log, however long.
        let from = after.saturating_sub(crate::ports::LATE_LOOKBACK + 1);
        let want = usize::try_from(after - from)
            .unwrap_or(usize::MAX)
            .saturating_add(limit)
            .saturating_add(1);
        let mut pages = Pages::new(
            self.table
                .query()
                .key_condition_expression("owner_id = :owner AND seq > :from")
                .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
                .expression_attribute_values(":from", AttributeValue::N(from.to_string()))
                .scan_index_forward(true)
                .consistent_read(true),
        );
        let mut items = Vec::new();
        while items.len() < want {
            let left = i32::try_from(want - items.len()).unwrap_or(i32::MAX);
            let Some(page) = pages
                .next_with(|query| query.limit(left))
                .await
                .map_err(unavailable)?
            else {
                break;
            };
            for item in page.items.unwrap_or_default() {
                let row: LoggedRow = from_item("a notice", item)?;
                if row.notice.is_some() {
                    items.push(row);
                }
            }
        }
        // Stopped with pages left: the slice was capped.
        let capped = pages.more();
        let after_stored = items
            .iter()
            .find(|row| row.seq == after)
            .and_then(|row| row.stored_at);
        let mut out = Vec::new();
        for row in &items {
            let late = row.seq < after
                && matches!((row.stored_at, after_stored), (Some(t), Some(a)) if t > a);
            if let Some(notice) = row.notice.as_deref() {
                if (row.seq > after || late) && !expired(row.expires_at, now) {
                    out.push(notice_from_json(notice)?);
                }
            }
        }
        // The sort key orders them already; sorting again guards against an emulator that
        // pages differently and costs nothing at page sizes.
        out.sort_by_key(|notice| notice.seq);
        // The late ones (below `after`) come first and do not count against the page.
        let late = out.iter().filter(|notice| notice.seq < after).count();
        let more = capped || out.len() - late > limit;
        out.truncate(late.saturating_add(limit));
        // Past the page's last notice, or (a page of only expired rows) past what was read.
        let next = out
            .last()
            .map(|notice| notice.seq)
            .or_else(|| items.iter().map(|row| row.seq).max())
            .filter(|seq| more && *seq > after);
        Ok(Replay { notices: out, next })
    }
}

#[cfg(test)]
mod tests {
    use super::super::items::{item, nu, st};
    use super::*;
    use crate::domain::{NoticeType, UploadState};

    fn notice() -> Notice {
        let mut record = crate::status_index::test_row(
            UploadState::Stored,
            Timestamp::from_unix_millis(1_800_000_000_000),
        );
        record.image_id = "01JABCDEFGHJKMNPQRSTVWXYZ0".parse().unwrap();
        Notice::new(NoticeType::Failed, &record, 7)
    }

    #[test]
    fn a_delivery_record_is_written_and_read_with_the_tables_attribute_names_and_types() {
        let d = Delivery {
            owner: "u1".parse().unwrap(),
            notice: notice(),
            delivered: BTreeSet::from(["c1".to_owned(), "c2".to_owned()]),
            done: true,
            expires_at: Timestamp::from_unix_millis(1_900_000_000_000),
        };
        let json = serde_json::to_string(&d.notice).unwrap();
        let written = to_item("a delivery record", &DeliveryRow::new("k", &d).unwrap()).unwrap();
        assert_eq!(
            written,
            item([
                ("owner_id", st("delivery#k")),
                ("seq", nu("0")),
                ("owner", st("u1")),
                ("notice", st(&json)),
                ("delivered", AttributeValue::L(vec![st("c1"), st("c2")])),
                ("done", AttributeValue::Bool(true)),
                ("expires_at", nu("1900000000")),
            ])
        );
        assert_eq!(delivery_from_item(written).unwrap(), d);
        assert_eq!(
            serde_dynamo::to_attribute_value::<_, AttributeValue>(&BTreeSet::<String>::new())
                .unwrap(),
            AttributeValue::L(vec![]),
            "progress with nothing delivered is an empty list"
        );
    }

    #[test]
    fn a_notice_is_written_with_the_tables_attribute_names_and_types() {
        let n = notice();
        let owner: OwnerId = "u1".parse().unwrap();
        let row = NoticeRow {
            owner_id: &owner,
            seq: n.seq,
            kind: n.kind.as_str(),
            image_id: n.image_id,
            notice: serde_json::to_string(&n).unwrap(),
            expires_at: 1_900_000_000,
            stored_at: 1_800_000_000_123,
        };
        assert_eq!(
            to_item("a notice", &row).unwrap(),
            item([
                ("owner_id", st("u1")),
                ("seq", nu("7")),
                ("type", st(n.kind.as_str())),
                ("image_id", st("01JABCDEFGHJKMNPQRSTVWXYZ0")),
                ("notice", st(&serde_json::to_string(&n).unwrap())),
                ("expires_at", nu("1900000000")),
                ("stored_at", nu("1800000000123")),
            ])
        );
    }
}
