//! `StatusIndex` over `by_status_v2` (see [`crate::status_index`]): COUNT queries of the shards,
//! pages merged over them, the page's rows fetched by id.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{cursor_query, record_from_item, DynamoImages, STATUS_KEY};
use crate::aws::table::{batch_get, Item};
use crate::domain::{ImageRecord, Status};
use crate::ports::{Page, RepoError, StatusIndex, StatusPage};
use crate::status_index::{self, Entry, Position, ShardRead};

impl DynamoImages {
    /// One COUNT of shard `n` of `status`.
    async fn count_shard(&self, status: Status, n: usize) -> Result<u64, RepoError> {
        self.count_where(
            status_index::INDEX,
            STATUS_KEY,
            status_index::shard_key(status, n),
        )
        .await
    }

    /// Up to `limit` entries of shard `n` of `status` from `position` (the index projects the
    /// keys only).
    async fn read_shard(
        &self,
        status: Status,
        n: usize,
        position: Position,
        oldest_first: bool,
        limit: u32,
    ) -> Result<(usize, ShardRead), RepoError> {
        let key = status_index::shard_key(status, n);
        let start = match position {
            Position::After(e) => Some(HashMap::from([
                ("image_id".to_owned(), AttributeValue::S(e.id.to_string())),
                (
                    status_index::SORT_KEY.to_owned(),
                    AttributeValue::S(e.since.to_string()),
                ),
                (STATUS_KEY.to_owned(), AttributeValue::S(key.clone())),
            ])),
            Position::Start | Position::Done => None,
        };
        let out = self
            .table
            .query()
            .index_name(status_index::INDEX)
            .key_condition_expression("#k = :k")
            .expression_attribute_names("#k", STATUS_KEY)
            .expression_attribute_values(":k", AttributeValue::S(key))
            .scan_index_forward(oldest_first)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await;
        let out = cursor_query(out)?;
        let items = out
            .items
            .unwrap_or_default()
            .iter()
            .map(entry_from_keys)
            .collect::<Result<Vec<_>, _>>()?;
        let more = out.last_evaluated_key.is_some_and(|k| !k.is_empty());
        Ok((n, ShardRead { items, more }))
    }
}

/// An index entry from the keys a `KEYS_ONLY` query returns.
fn entry_from_keys(item: &Item) -> Result<Entry, RepoError> {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| RepoError::malformed("a status index entry", format!("no {name}")))
    };
    Ok(Entry {
        since: text(status_index::SORT_KEY)?
            .parse()
            .map_err(|e| RepoError::malformed("a status index entry's status_since", e))?,
        id: text("image_id")?
            .parse()
            .map_err(|e| RepoError::malformed("a status index entry's image_id", e))?,
    })
}

impl StatusIndex for DynamoImages {
    async fn count_by_status(&self, status: Status) -> Result<u64, RepoError> {
        if !status_index::indexed(status) {
            return Ok(0);
        }
        let counts = futures::future::try_join_all(
            (0..status_index::SHARDS).map(|n| self.count_shard(status, n)),
        )
        .await?;
        Ok(counts.into_iter().sum())
    }

    async fn page_by_status(&self, page: StatusPage<'_>) -> Result<Page<ImageRecord>, RepoError> {
        let (status, oldest_first, limit) = (page.status, page.oldest_first, page.limit);
        if !status_index::indexed(status) {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        let cursor = page
            .cursor
            .map(status_index::Cursor::decode)
            .transpose()?
            .unwrap_or_default();
        let reads = futures::future::try_join_all(
            cursor
                .open_shards()
                .map(|(n, p)| self.read_shard(status, n, p, oldest_first, limit)),
        )
        .await?;
        let page = status_index::merge(&cursor, reads, oldest_first, limit);
        let ids: Vec<String> = page.items.iter().map(|e| e.id.to_string()).collect();
        let rows = batch_get(&self.table, "image_id", &ids)
            .await?
            .into_iter()
            .map(record_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items: status_index::rows_in_order(&page.items, rows, status),
            next: page.next,
        })
    }
}
