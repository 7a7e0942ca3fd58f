//! DynamoDB adapters for live notices: the connections table ([`connections`],
//! `ConnectionRepository`) and the notices table ([`notices`], `NoticeLog`).
//!
//! Reads treat rows whose `expires_at` has passed as absent: TTL deletion is lazy on AWS and not
//! done at all by the local emulator.

use serde::{Deserialize, Serialize};

use super::table::Item;
use crate::domain::Timestamp;
use crate::ports::RealtimeError;

pub mod connections;
pub mod notices;

pub use connections::DynamoConnections;
pub use notices::DynamoNotices;

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

/// Items written out by hand, for the tests that pin the tables' layouts.
#[cfg(test)]
mod items {
    use aws_sdk_dynamodb::types::AttributeValue;

    use super::Item;

    pub(super) fn st(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    pub(super) fn nu(v: &str) -> AttributeValue {
        AttributeValue::N(v.to_owned())
    }

    pub(super) fn item<const N: usize>(pairs: [(&str, AttributeValue); N]) -> Item {
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_past_their_expiry_count_as_absent_and_rows_without_one_do_not_expire() {
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        assert!(expired(Some(now.unix_seconds() - 1), now));
        assert!(expired(Some(now.unix_seconds()), now));
        assert!(!expired(Some(now.unix_seconds() + 1), now));
        assert!(!expired(None, now));
    }
}
