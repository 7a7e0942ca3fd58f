//! DynamoDB adapters for live notices: the connections table (`ConnectionRepository`) and the
//! notices table (`NoticeLog`).
//!
//! Connections table (pk `connection_id`, GSI `by_owner`): `connection_id`, `owner_id`,
//! `connected_at` (RFC 3339), `expires_at` (TTL, epoch seconds).
//!
//! Notices table (pk `owner_id`, sk `seq`) holds three kinds of rows:
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
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use crate::domain::{ImageId, Notice, OwnerId, Timestamp};
use crate::ports::{
    Connection, ConnectionRepository, Delivery, LogEntry, NoticeLog, Progress, RealtimeError,
    Replay, ReplayQuery,
};

type Item = HashMap<String, AttributeValue>;

fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> RealtimeError {
    RealtimeError::Unavailable(Box::new(e))
}

/// `row` as an item.
fn to_item<T: Serialize>(what: &'static str, row: &T) -> Result<Item, RealtimeError> {
    serde_dynamo::to_item(row).map_err(|e| RealtimeError::malformed(what, e))
}

/// `item` as a `T`.
fn from_item<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    item: Item,
) -> Result<T, RealtimeError> {
    serde_dynamo::from_item(item).map_err(|e| RealtimeError::malformed(what, e))
}

/// An absent `expires_at` (epoch seconds) never expires.
fn expired(expires_at: Option<i64>, now: Timestamp) -> bool {
    expires_at.is_some_and(|at| at <= now.unix_seconds())
}

/// A row of the connections table.
#[derive(Debug, Serialize, Deserialize)]
struct ConnectionRow {
    connection_id: String,
    owner_id: OwnerId,
    /// RFC 3339.
    connected_at: Timestamp,
    /// TTL, epoch seconds.
    expires_at: i64,
}

impl From<&Connection> for ConnectionRow {
    fn from(c: &Connection) -> Self {
        ConnectionRow {
            connection_id: c.connection_id.clone(),
            owner_id: c.owner.clone(),
            connected_at: c.connected_at,
            expires_at: c.expires_at.unix_seconds(),
        }
    }
}

impl From<ConnectionRow> for Connection {
    fn from(row: ConnectionRow) -> Self {
        Connection {
            connection_id: row.connection_id,
            owner: row.owner_id,
            connected_at: row.connected_at,
            expires_at: Timestamp::from_unix_millis(row.expires_at.saturating_mul(1000)),
        }
    }
}

/// A connection row read back, unless it expired.
fn live_connection(item: Item, now: Timestamp) -> Result<Option<Connection>, RealtimeError> {
    let row: ConnectionRow = from_item("a connection", item)?;
    Ok((!expired(Some(row.expires_at), now)).then(|| row.into()))
}

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

/// The connections table.
#[derive(Debug, Clone)]
pub struct DynamoConnections {
    client: Client,
    table: String,
}

impl DynamoConnections {
    /// A repository on `table`.
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        DynamoConnections {
            client: Client::new(config),
            table: table.into(),
        }
    }
}

impl ConnectionRepository for DynamoConnections {
    async fn put(&self, c: &Connection) -> Result<(), RealtimeError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item("a connection", &ConnectionRow::from(c))?))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get(
        &self,
        connection_id: &str,
        now: Timestamp,
    ) -> Result<Option<Connection>, RealtimeError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("connection_id", AttributeValue::S(connection_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        match out.item {
            Some(item) => live_connection(item, now),
            None => Ok(None),
        }
    }

    async fn delete(&self, connection_id: &str) -> Result<(), RealtimeError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("connection_id", AttributeValue::S(connection_id.to_owned()))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn for_owner(
        &self,
        owner: &OwnerId,
        now: Timestamp,
    ) -> Result<Vec<Connection>, RealtimeError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("by_owner")
                .key_condition_expression("owner_id = :owner")
                .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items.unwrap_or_default() {
                out.extend(live_connection(item, now)?);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(out),
            }
        }
    }
}

/// The notices table: counters, the replay log and delivery records.
#[derive(Debug, Clone)]
pub struct DynamoNotices {
    client: Client,
    table: String,
}

impl DynamoNotices {
    /// A log on `table`.
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        DynamoNotices {
            client: Client::new(config),
            table: table.into(),
        }
    }

    async fn read_delivery(&self, key: &str) -> Result<Option<Delivery>, RealtimeError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("owner_id", AttributeValue::S(delivery_pk(key)))
            .key("seq", AttributeValue::N("0".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.map(delivery_from_item).transpose()
    }
}

fn delivery_pk(key: &str) -> String {
    format!("delivery#{key}")
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
            .client
            .update_item()
            .table_name(&self.table)
            .key("owner_id", AttributeValue::S(owner.to_string()))
            .key("seq", AttributeValue::N("0".into()))
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
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(
                "a delivery record",
                &DeliveryRow::new(key, d)?,
            )?))
            .condition_expression("attribute_not_exists(owner_id)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(d.clone()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                // The record that won comes back with the refusal; a store that does not
                // return it is read.
                if let PutItemError::ConditionalCheckFailedException(refused) = e.err() {
                    if let Some(won) = refused.item().filter(|item| !item.is_empty()) {
                        return delivery_from_item(won.clone());
                    }
                }
                self.read_delivery(key).await?.ok_or_else(|| {
                    RealtimeError::malformed(
                        "a delivery record",
                        "it vanished between the claim and the read",
                    )
                })
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn record_progress(
        &self,
        key: &str,
        progress: &Progress<'_>,
    ) -> Result<(), RealtimeError> {
        let Progress { delivered, done } = *progress;
        self.client
            .update_item()
            .table_name(&self.table)
            .key("owner_id", AttributeValue::S(delivery_pk(key)))
            .key("seq", AttributeValue::N("0".into()))
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
        self.client
            .put_item()
            .table_name(&self.table)
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
        let mut items = Vec::new();
        let mut start = None;
        let mut capped = false;
        loop {
            let left = i32::try_from(want - items.len()).unwrap_or(i32::MAX);
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("owner_id = :owner AND seq > :from")
                .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
                .expression_attribute_values(":from", AttributeValue::N(from.to_string()))
                .scan_index_forward(true)
                .consistent_read(true)
                .limit(left)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items.unwrap_or_default() {
                let row: LoggedRow = from_item("a notice", item)?;
                if row.notice.is_some() {
                    items.push(row);
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() && items.len() < want => start = Some(key),
                Some(key) if !key.is_empty() => {
                    capped = true;
                    break;
                }
                _ => break,
            }
        }
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
    use super::*;
    use crate::domain::{ContentType, ImageRecord, NewImage, NoticeType, UploadState};

    fn st(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    fn nu(v: &str) -> AttributeValue {
        AttributeValue::N(v.to_owned())
    }

    fn item<const N: usize>(pairs: [(&str, AttributeValue); N]) -> Item {
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    #[test]
    fn rows_past_their_expiry_count_as_absent_and_rows_without_one_do_not_expire() {
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        assert!(expired(Some(now.unix_seconds() - 1), now));
        assert!(expired(Some(now.unix_seconds()), now));
        assert!(!expired(Some(now.unix_seconds() + 1), now));
        assert!(!expired(None, now));
    }

    #[test]
    fn a_connection_row_reads_back() {
        let row = item([
            ("connection_id", st("abc=")),
            ("owner_id", st("u1")),
            ("connected_at", st("2026-11-28T10:00:00.000Z")),
            ("expires_at", nu("1900000000")),
        ]);
        let now = Timestamp::from_unix_millis(1_800_000_000_000);
        let c = live_connection(row.clone(), now).unwrap().unwrap();
        assert_eq!(c.connection_id, "abc=");
        assert_eq!(c.owner.as_str(), "u1");
        assert_eq!(c.expires_at.unix_seconds(), 1_900_000_000);
        let later = Timestamp::from_unix_millis(1_900_000_000_000);
        assert_eq!(live_connection(row, later).unwrap(), None, "expired");
        let bad = item([("connection_id", st("abc="))]);
        assert!(matches!(
            live_connection(bad, now),
            Err(RealtimeError::Malformed { .. })
        ));
    }

    #[test]
    fn a_connection_is_written_with_the_tables_attribute_names_and_types() {
        let c = Connection {
            connection_id: "abc=".into(),
            owner: "u1".parse().unwrap(),
            connected_at: "2026-11-28T10:00:00.000Z".parse().unwrap(),
            expires_at: Timestamp::from_unix_millis(1_900_000_000_000),
        };
        assert_eq!(
            to_item("a connection", &ConnectionRow::from(&c)).unwrap(),
            item([
                ("connection_id", st("abc=")),
                ("owner_id", st("u1")),
                ("connected_at", st("2026-11-28T10:00:00.000Z")),
                ("expires_at", nu("1900000000")),
            ])
        );
    }

    fn notice() -> Notice {
        let record = ImageRecord::new(
            NewImage {
                image_id: "01JABCDEFGHJKMNPQRSTVWXYZ0".parse().unwrap(),
                owner_id: "u1".parse().unwrap(),
                filename: None,
                content_type: ContentType::Jpeg,
                byte_size: 10,
                sha256: None,
                upload_state: UploadState::Stored,
            },
            Timestamp::from_unix_millis(1_800_000_000_000),
        );
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
