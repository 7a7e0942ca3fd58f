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

use crate::domain::{Notice, OwnerId, Timestamp};
use crate::ports::{Connection, ConnectionRepository, Delivery, NoticeLog, RealtimeError, Replay};

type Item = HashMap<String, AttributeValue>;

fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> RealtimeError {
    RealtimeError::Unavailable(Box::new(e))
}

fn malformed(what: &str) -> RealtimeError {
    RealtimeError::Malformed(what.to_owned())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn text<'a>(item: &'a Item, name: &str) -> Result<&'a str, RealtimeError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| malformed(&format!("missing text attribute {name}")))
}

fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, RealtimeError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| malformed(&format!("missing numeric attribute {name}")))
}

/// An absent `expires_at` never expires.
fn expired(item: &Item, now: Timestamp) -> bool {
    number::<i64>(item, "expires_at").is_ok_and(|at| at <= now.unix_seconds())
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

fn connection_from_item(item: &Item) -> Result<Connection, RealtimeError> {
    Ok(Connection {
        connection_id: text(item, "connection_id")?.to_owned(),
        owner: text(item, "owner_id")?
            .parse()
            .map_err(|e: crate::domain::IdError| RealtimeError::Malformed(e.to_string()))?,
        connected_at: text(item, "connected_at")?
            .parse()
            .map_err(|_| malformed("connected_at is not a timestamp"))?,
        expires_at: Timestamp::from_unix_millis(
            number::<i64>(item, "expires_at")?.saturating_mul(1000),
        ),
    })
}

impl ConnectionRepository for DynamoConnections {
    async fn put(&self, c: &Connection) -> Result<(), RealtimeError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("connection_id", s(&c.connection_id))
            .item("owner_id", s(c.owner.as_str()))
            .item("connected_at", s(c.connected_at.to_string()))
            .item("expires_at", n(c.expires_at.unix_seconds()))
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
            .key("connection_id", s(connection_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item
            .filter(|item| !expired(item, now))
            .map(|item| connection_from_item(&item))
            .transpose()
    }

    async fn delete(&self, connection_id: &str) -> Result<(), RealtimeError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("connection_id", s(connection_id))
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
                .expression_attribute_values(":owner", s(owner.as_str()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items() {
                if !expired(item, now) {
                    out.push(connection_from_item(item)?);
                }
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
            .key("owner_id", s(delivery_pk(key)))
            .key("seq", n(0))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.map(|item| delivery_from_item(&item)).transpose()
    }
}

fn delivery_pk(key: &str) -> String {
    format!("delivery#{key}")
}

fn notice_json(notice: &Notice) -> Result<String, RealtimeError> {
    serde_json::to_string(notice).map_err(|e| RealtimeError::Malformed(e.to_string()))
}

fn notice_from_json(json: &str) -> Result<Notice, RealtimeError> {
    serde_json::from_str(json).map_err(|e| RealtimeError::Malformed(e.to_string()))
}

fn delivery_from_item(item: &Item) -> Result<Delivery, RealtimeError> {
    let delivered = match item.get("delivered") {
        None => BTreeSet::new(),
        Some(v) => v
            .as_l()
            .map_err(|_| malformed("delivered is not a list"))?
            .iter()
            .filter_map(|v| v.as_s().ok().cloned())
            .collect(),
    };
    Ok(Delivery {
        owner: text(item, "owner")?
            .parse()
            .map_err(|e: crate::domain::IdError| RealtimeError::Malformed(e.to_string()))?,
        notice: notice_from_json(text(item, "notice")?)?,
        delivered,
        done: item
            .get("done")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        expires_at: Timestamp::from_unix_millis(
            number::<i64>(item, "expires_at")?.saturating_mul(1000),
        ),
    })
}

fn id_list(ids: &BTreeSet<String>) -> AttributeValue {
    AttributeValue::L(ids.iter().map(|id| s(id.as_str())).collect())
}

impl NoticeLog for DynamoNotices {
    async fn next_seq(&self, owner: &OwnerId) -> Result<u64, RealtimeError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("owner_id", s(owner.as_str()))
            .key("seq", n(0))
            .update_expression("ADD last_seq :one")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(unavailable)?;
        let attributes = out.attributes.unwrap_or_default();
        number(&attributes, "last_seq")
    }

    async fn claim(&self, key: &str, d: &Delivery) -> Result<Delivery, RealtimeError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("owner_id", s(delivery_pk(key)))
            .item("seq", n(0))
            .item("owner", s(d.owner.as_str()))
            .item("notice", s(notice_json(&d.notice)?))
            .item("delivered", id_list(&d.delivered))
            .item("done", AttributeValue::Bool(d.done))
            .item("expires_at", n(d.expires_at.unix_seconds()))
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
                        return delivery_from_item(won);
                    }
                }
                self.read_delivery(key).await?.ok_or_else(|| {
                    malformed("a delivery record vanished between the claim and the read")
                })
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn record_progress(
        &self,
        key: &str,
        delivered: &BTreeSet<String>,
        done: bool,
    ) -> Result<(), RealtimeError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("owner_id", s(delivery_pk(key)))
            .key("seq", n(0))
            .update_expression("SET delivered = :delivered, done = :done")
            .condition_expression("attribute_exists(owner_id)")
            .expression_attribute_values(":delivered", id_list(delivered))
            .expression_attribute_values(":done", AttributeValue::Bool(done))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn append(
        &self,
        owner: &OwnerId,
        notice: &Notice,
        expires_at: Timestamp,
    ) -> Result<(), RealtimeError> {
        if notice.seq == 0 {
            return Err(malformed("seq 0 is the counter row, not a notice"));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .item("owner_id", s(owner.as_str()))
            .item("seq", n(notice.seq))
            .item("type", s(notice.kind.as_str()))
            .item("image_id", s(notice.image_id.to_string()))
            .item("notice", s(notice_json(notice)?))
            .item("expires_at", n(expires_at.unix_seconds()))
            // When it reached the log: a resume finds notices numbered before another but
            // stored after it.
            .item("stored_at", n(Timestamp::now().unix_millis()))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn since(
        &self,
        owner: &OwnerId,
        after: u64,
        now: Timestamp,
        limit: usize,
    ) -> Result<Replay, RealtimeError> {
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
                .expression_attribute_values(":owner", s(owner.as_str()))
                .expression_attribute_values(":from", n(from))
                .scan_index_forward(true)
                .consistent_read(true)
                .limit(left)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            items.extend(
                page.items()
                    .iter()
                    .filter(|item| item.contains_key("notice"))
                    .cloned(),
            );
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() && items.len() < want => start = Some(key),
                Some(key) if !key.is_empty() => {
                    capped = true;
                    break;
                }
                _ => break,
            }
        }
        let number = |item: &HashMap<String, AttributeValue>, name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
        };
        let seq_of = |item: &HashMap<String, AttributeValue>| {
            number(item, "seq")
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(0)
        };
        let after_stored = items
            .iter()
            .find(|item| seq_of(item) == after)
            .and_then(|item| number(item, "stored_at"));
        let mut out = Vec::new();
        for item in &items {
            let seq = seq_of(item);
            let late = seq < after
                && matches!((number(item, "stored_at"), after_stored), (Some(t), Some(a)) if t > a);
            if (seq > after || late) && !expired(item, now) {
                out.push(notice_from_json(text(item, "notice")?)?);
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
            .or_else(|| items.iter().map(seq_of).max())
            .filter(|seq| more && *seq > after);
        Ok(Replay { notices: out, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_past_their_expiry_count_as_absent_and_rows_without_one_do_not_expire() {
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        let with = |secs: i64| Item::from([("expires_at".to_owned(), n(secs))]);
        assert!(expired(&with(now.unix_seconds() - 1), now));
        assert!(expired(&with(now.unix_seconds()), now));
        assert!(!expired(&with(now.unix_seconds() + 1), now));
        assert!(!expired(&Item::new(), now));
    }

    #[test]
    fn a_connection_row_reads_back() {
        let item = Item::from([
            ("connection_id".to_owned(), s("abc=")),
            ("owner_id".to_owned(), s("u1")),
            ("connected_at".to_owned(), s("2026-11-28T10:00:00.000Z")),
            ("expires_at".to_owned(), n(1_900_000_000)),
        ]);
        let c = connection_from_item(&item).unwrap();
        assert_eq!(c.connection_id, "abc=");
        assert_eq!(c.owner.as_str(), "u1");
        assert_eq!(c.expires_at.unix_seconds(), 1_900_000_000);
        let bad = Item::from([("connection_id".to_owned(), s("abc="))]);
        assert!(matches!(
            connection_from_item(&bad),
            Err(RealtimeError::Malformed(_))
        ));
    }
}
