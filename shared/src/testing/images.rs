//! The images table in memory: rows, its status index, the backfill's reads and the awaiting uploads.

use super::*;
use crate::ports::{OwnerPage, PageRequest, StatusPage};

/// The images table in memory.
#[derive(Debug, Default, Clone)]
pub struct MemoryImages {
    rows: Arc<Mutex<BTreeMap<ImageId, ImageRecord>>>,
    legacy: Arc<Mutex<BTreeMap<ImageId, crate::domain::LegacyRow>>>,
    /// Rows written before `by_status_v2` existed: without a `status_key` (so not in the index)
    /// until a write through the repository or the backfill gives them one.
    unindexed: Arc<Mutex<std::collections::BTreeSet<ImageId>>>,
}

impl MemoryImages {
    /// All rows.
    pub fn rows(&self) -> Vec<ImageRecord> {
        lock(&self.rows).values().cloned().collect()
    }

    /// Puts a row directly (test setup), as the images adapter writes it (indexed by status).
    pub fn insert(&self, record: ImageRecord) {
        lock(&self.unindexed).remove(&record.image_id);
        lock(&self.rows).insert(record.image_id, record);
    }

    /// Puts a row as a release before `by_status_v2` wrote it: without a `status_key`.
    pub fn insert_unindexed(&self, record: ImageRecord) {
        lock(&self.unindexed).insert(record.image_id);
        lock(&self.rows).insert(record.image_id, record);
    }

    /// Whether the row is in `by_status_v2` (it has a `status_key`).
    pub fn in_status_index(&self, id: ImageId) -> bool {
        lock(&self.rows).get(&id).is_some_and(|r| {
            crate::status_index::indexed(r.processing_status)
                && !lock(&self.unindexed).contains(&id)
        })
    }
}

impl ImageRepository for MemoryImages {
    async fn create(&self, record: &ImageRecord) -> Result<(), RepoError> {
        let mut rows = lock(&self.rows);
        if rows.contains_key(&record.image_id) || lock(&self.legacy).contains_key(&record.image_id)
        {
            return Err(RepoError::Conflict);
        }
        lock(&self.unindexed).remove(&record.image_id);
        rows.insert(record.image_id, record.clone());
        Ok(())
    }

    async fn get(&self, id: ImageId) -> Result<Option<ImageRecord>, RepoError> {
        Ok(lock(&self.rows).get(&id).cloned())
    }

    async fn list_by_owner(&self, page: OwnerPage<'_>) -> Result<Page<ImageRecord>, RepoError> {
        let (owner, limit, cursor) = (page.of, page.limit, page.cursor);
        let after: Option<ImageId> = cursor
            .map(|c| c.parse().map_err(|_| RepoError::BadCursor))
            .transpose()?;
        let mut mine: Vec<ImageRecord> = lock(&self.rows)
            .values()
            .filter(|r| &r.owner_id == owner)
            .cloned()
            .collect();
        mine.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.image_id)));
        let start = after.map_or(0, |id| {
            mine.iter()
                .position(|r| r.image_id == id)
                .map_or(mine.len(), |p| p + 1)
        });
        let items: Vec<ImageRecord> = mine
            .iter()
            .skip(start)
            .take(limit as usize)
            .cloned()
            .collect();
        let next = (start + items.len() < mine.len())
            .then(|| items.last().map(|r| r.image_id.to_string()))
            .flatten();
        Ok(Page { items, next })
    }

    async fn update(&self, record: &mut ImageRecord) -> Result<(), RepoError> {
        let mut rows = lock(&self.rows);
        match rows.get(&record.image_id) {
            Some(current) if current.version == record.version => {
                record.version += 1;
                lock(&self.unindexed).remove(&record.image_id);
                rows.insert(record.image_id, record.clone());
                Ok(())
            }
            _ => Err(RepoError::Conflict),
        }
    }

    async fn delete(&self, id: ImageId) -> Result<(), RepoError> {
        lock(&self.rows).remove(&id);
        Ok(())
    }
}

/// As `by_status_v2` holds them: the rows of shard `n` of `status` with a `status_key`, in the
/// index's order (`status_since`, `image_id`).
impl MemoryImages {
    fn shard_rows(&self, status: Status, n: usize, oldest_first: bool) -> Vec<ImageRecord> {
        if !crate::status_index::indexed(status) {
            return Vec::new();
        }
        let unindexed = lock(&self.unindexed);
        let mut rows: Vec<ImageRecord> = lock(&self.rows)
            .values()
            .filter(|r| {
                r.processing_status == status
                    && crate::status_index::shard(r.image_id) == n
                    && !unindexed.contains(&r.image_id)
            })
            .cloned()
            .collect();
        rows.sort_by_key(crate::status_index::Entry::of);
        if !oldest_first {
            rows.reverse();
        }
        rows
    }
}

impl StatusIndex for MemoryImages {
    async fn count_by_status(&self, status: Status) -> Result<u64, RepoError> {
        Ok((0..crate::status_index::SHARDS)
            .map(|n| self.shard_rows(status, n, true).len() as u64)
            .sum())
    }

    async fn page_by_status(&self, page: StatusPage<'_>) -> Result<Page<ImageRecord>, RepoError> {
        let (status, oldest_first) = (page.status, page.oldest_first);
        let (limit, cursor) = (page.limit, page.cursor);
        use crate::status_index::{after, merge, rows_in_order, Cursor, Entry, ShardRead};
        if !crate::status_index::indexed(status) {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        let cursor = cursor.map(Cursor::decode).transpose()?.unwrap_or_default();
        let limit_rows = limit.max(1) as usize;
        // Each open shard read from its own position, `limit` entries at most: a Query per
        // shard, of the keys only.
        let reads = cursor
            .open_shards()
            .map(|(n, position)| {
                let mut entries: Vec<Entry> = self
                    .shard_rows(status, n, oldest_first)
                    .iter()
                    .map(Entry::of)
                    .filter(|e| after(e, position, oldest_first))
                    .collect();
                let more = entries.len() > limit_rows;
                entries.truncate(limit_rows);
                (
                    n,
                    ShardRead {
                        items: entries,
                        more,
                    },
                )
            })
            .collect();
        let page = merge(&cursor, reads, oldest_first, limit);
        // Then the rows themselves, by id (the adapter's BatchGetItem).
        let rows: Vec<ImageRecord> = {
            let all = lock(&self.rows);
            page.items
                .iter()
                .filter_map(|e| all.get(&e.id).cloned())
                .collect()
        };
        Ok(Page {
            items: rows_in_order(&page.items, rows, status),
            next: page.next,
        })
    }
}

impl MemoryImages {
    /// Puts a legacy row (one an older system wrote, without the status fields) directly.
    pub fn insert_legacy(&self, id: ImageId, row: crate::domain::LegacyRow) {
        lock(&self.legacy).insert(id, row);
    }

    /// Legacy rows still there.
    pub fn legacy_ids(&self) -> Vec<ImageId> {
        lock(&self.legacy).keys().copied().collect()
    }
}

impl crate::ports::BackfillRows for MemoryImages {
    async fn read_row(&self, id: ImageId) -> Result<Option<crate::ports::StoredRow>, RepoError> {
        if let Some(r) = lock(&self.rows).get(&id) {
            return Ok(Some(crate::ports::StoredRow::Current(Box::new(r.clone()))));
        }
        Ok(lock(&self.legacy)
            .get(&id)
            .cloned()
            .map(crate::ports::StoredRow::Legacy))
    }

    async fn replace_legacy(&self, record: &ImageRecord) -> Result<(), RepoError> {
        if lock(&self.legacy).remove(&record.image_id).is_none() {
            return Err(RepoError::Conflict);
        }
        lock(&self.unindexed).remove(&record.image_id);
        lock(&self.rows).insert(record.image_id, record.clone());
        Ok(())
    }

    async fn page_unindexed(
        &self,
        page: PageRequest<'_, Status>,
    ) -> Result<Page<ImageRecord>, RepoError> {
        let (status, limit, cursor) = (page.of, page.limit, page.cursor);
        let after: Option<ImageId> = cursor
            .map(|c| c.parse().map_err(|_| RepoError::BadCursor))
            .transpose()?;
        let unindexed = lock(&self.unindexed);
        let rows: Vec<ImageRecord> = lock(&self.rows)
            .values()
            .filter(|r| r.processing_status == status && unindexed.contains(&r.image_id))
            .filter(|r| after.is_none_or(|a| r.image_id > a))
            .take(limit.max(1) as usize + 1)
            .cloned()
            .collect();
        let more = rows.len() > limit.max(1) as usize;
        let items: Vec<ImageRecord> = rows.into_iter().take(limit.max(1) as usize).collect();
        let next = more
            .then(|| items.last().map(|r| r.image_id.to_string()))
            .flatten();
        Ok(Page { items, next })
    }

    async fn count_completed(&self) -> Result<u64, RepoError> {
        Ok(lock(&self.rows)
            .values()
            .filter(|r| r.processing_status == Status::Completed)
            .count() as u64)
    }

    async fn index_row(&self, record: &ImageRecord) -> Result<bool, RepoError> {
        let rows = lock(&self.rows);
        let mut unindexed = lock(&self.unindexed);
        match rows.get(&record.image_id) {
            Some(current)
                if current.version == record.version && unindexed.contains(&record.image_id) =>
            {
                unindexed.remove(&record.image_id);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// Rows awaiting their bytes, from the rows in memory (what the `by_owner` query reads).
impl crate::ports::AwaitingUploads for MemoryImages {
    async fn awaiting_since(
        &self,
        owner: &OwnerId,
        after: Timestamp,
    ) -> Result<Vec<Timestamp>, RepoError> {
        let mut out: Vec<Timestamp> = lock(&self.rows)
            .values()
            .filter(|r| &r.owner_id == owner && r.created_at > after)
            .filter(|r| r.upload_state == crate::domain::UploadState::AwaitingUpload)
            .map(|r| r.created_at)
            .collect();
        out.sort();
        Ok(out)
    }
}
