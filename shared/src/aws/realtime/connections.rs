//! The connections table (pk `connection_id`, GSI `by_owner`): `connection_id`, `owner_id`,
//! `connected_at` (RFC 3339), `expires_at` (TTL, epoch seconds).

use aws_config::SdkConfig;
use serde::{Deserialize, Serialize};

use super::{expired, from_item, to_item, unavailable};
use crate::aws::table::{self, Item, Pages, Table};
use crate::domain::{OwnerId, Timestamp};
use crate::ports::{Connection, ConnectionRepository, RealtimeError};

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

/// The connections table.
#[derive(Debug, Clone)]
pub struct DynamoConnections {
    table: Table,
}

impl DynamoConnections {
    /// A repository on `table`.
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        DynamoConnections {
            table: Table::new(config, table),
        }
    }
}

impl ConnectionRepository for DynamoConnections {
    async fn put(&self, c: &Connection) -> Result<(), RealtimeError> {
        self.table
            .put()
            .set_item(Some(to_item("a connection", &ConnectionRow::from(c))?))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get(&self, id: &str, now: Timestamp) -> Result<Option<Connection>, RealtimeError> {
        let item = self
            .table
            .get(table::key("connection_id", id))
            .await
            .map_err(unavailable)?;
        match item {
            Some(item) => live_connection(item, now),
            None => Ok(None),
        }
    }

    async fn delete(&self, connection_id: &str) -> Result<(), RealtimeError> {
        self.table
            .delete(table::key("connection_id", connection_id))
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
        let mut pages = Pages::new(self.table.owner_query(owner, "owner_id = :owner"));
        let mut out = Vec::new();
        while let Some(page) = pages.next().await.map_err(unavailable)? {
            for item in page.items.unwrap_or_default() {
                out.extend(live_connection(item, now)?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::items::{item, nu, st};
    use super::*;

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
}
