//! The sparse, write-sharded status index `by_status_v2` (docs/ARCHITECTURE.md, "Scale"): its
//! keys and the merge of its shards into one ordered page. No AWS types: the images adapter and
//! the in-memory fake both page through [`merge`], so the fakes' tests exercise the real merge.
//!
//! A row in `pending`, `processing` or `failed` carries `status_key = "{status}#{n}"`, `n` the
//! image's [`shard`] (a hash of its id mod [`SHARDS`]); a `completed` row carries none, so it
//! leaves the index (operators need counts and the failed list, not every completed row: the
//! completed total is a counter). The index's sort key is `status_since` (when the row took its
//! status) and it projects only the keys, so a row write that keeps the status does not write
//! the index at all: an image writes its entries four times in its life (created `pending`, to
//! `processing`: a delete and a put, gone when it completes), each a key-sized write.
//!
//! A page queries every shard not yet exhausted (up to `limit` entries each, from the shard's
//! own position) and keeps the first `limit` of the merge by (`status_since`, `image_id`); the
//! reader then fetches those rows ([`rows_in_order`]). The cursor holds each shard's position:
//! the last entry taken from it, or that it is exhausted; so the next page resumes each shard
//! exactly where the previous page stopped taking from it, whatever the interleaving.

use std::cmp::Ordering;
use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;

use crate::domain::{ImageId, ImageRecord, Status, Timestamp};
use crate::ports::{Page, RepoError};

/// Index partitions per status. The busiest shard keys are `pending#n` and `processing#n`: each
/// image puts and deletes one entry under each, so at 100x the design point (10 000 uploads/s)
/// a shard takes 2 x 10 000 / 32 = 625 key-sized writes/s, under DynamoDB's 1000 WCU/s per
/// partition. Readers pay for the spread: a count is 32 `Select=COUNT` queries per status.
pub const SHARDS: usize = 32;

/// The index's name.
pub const INDEX: &str = "by_status_v2";

/// The index's sort key attribute.
pub const SORT_KEY: &str = "status_since";

/// The wire version of [`Cursor`] (2 was the 16-shard, `updated_at`-sorted index).
const CURSOR_VERSION: u64 = 3;

/// The statuses the index holds (completed rows leave it).
pub const INDEXED: [Status; 3] = [Status::Pending, Status::Processing, Status::Failed];

/// Whether rows with `status` are in the index.
pub fn indexed(status: Status) -> bool {
    status != Status::Completed
}

/// The shard of an image: FNV-1a of its id's text, mod [`SHARDS`] (stable across processes
/// and releases, unlike the standard library's hasher).
pub fn shard(id: ImageId) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.to_string().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % SHARDS as u32) as usize
}

/// The index partition key of shard `n` of `status`.
pub fn shard_key(status: Status, n: usize) -> String {
    format!("{}#{n}", status.as_str())
}

/// The `status_key` a row is written with: `None` when it completed (not indexed).
pub fn status_key(record: &ImageRecord) -> Option<String> {
    indexed(record.processing_status)
        .then(|| shard_key(record.processing_status, shard(record.image_id)))
}

/// One index entry as the `KEYS_ONLY` projection holds it (with its shard key): when the row
/// took its status, and the row's id. Ordered by both, the index's order within a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// The row's `status_since`.
    pub since: Timestamp,
    /// The row.
    pub id: ImageId,
}

impl Entry {
    /// The entry `record` has in the index.
    pub fn of(record: &ImageRecord) -> Self {
        Entry {
            since: record.status_since(),
            id: record.image_id,
        }
    }
}

/// Where a shard's reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Nothing taken from it yet.
    Start,
    /// Resume after this entry (with the shard's key, the index key).
    After(Entry),
    /// Nothing left in it.
    Done,
}

/// A page cursor of the index: one position per shard, as base64url JSON
/// (`{"v":3,"s":[null | "done" | ["<status_since>", "<image_id>"], ...]}`). The status comes
/// from the caller, never from the cursor, so a cursor cannot move a page to another status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(pub [Position; SHARDS]);

impl Default for Cursor {
    fn default() -> Self {
        Cursor([Position::Start; SHARDS])
    }
}

impl Cursor {
    /// The wire form.
    pub fn encode(&self) -> String {
        let shards: Vec<serde_json::Value> = self
            .0
            .iter()
            .map(|p| match p {
                Position::Start => serde_json::Value::Null,
                Position::Done => serde_json::json!("done"),
                Position::After(e) => serde_json::json!([e.since.to_string(), e.id.to_string()]),
            })
            .collect();
        let json = serde_json::json!({"v": CURSOR_VERSION, "s": shards});
        B64URL.encode(json.to_string())
    }

    /// Reads the wire form; `BadCursor` for anything else (a cursor of an older index layout
    /// included: a caller starts again from the first page).
    pub fn decode(text: &str) -> Result<Self, RepoError> {
        let json = B64URL.decode(text).map_err(|_| RepoError::BadCursor)?;
        let value: serde_json::Value =
            serde_json::from_slice(&json).map_err(|_| RepoError::BadCursor)?;
        if value.get("v").and_then(serde_json::Value::as_u64) != Some(CURSOR_VERSION) {
            return Err(RepoError::BadCursor);
        }
        let shards = value
            .get("s")
            .and_then(serde_json::Value::as_array)
            .filter(|s| s.len() == SHARDS)
            .ok_or(RepoError::BadCursor)?;
        let mut cursor = Cursor::default();
        for (slot, p) in cursor.0.iter_mut().zip(shards) {
            *slot = match p {
                serde_json::Value::Null => Position::Start,
                serde_json::Value::String(s) if s == "done" => Position::Done,
                serde_json::Value::Array(pair) => match pair.as_slice() {
                    [serde_json::Value::String(at), serde_json::Value::String(id)] => {
                        Position::After(Entry {
                            since: at.parse().map_err(|_| RepoError::BadCursor)?,
                            id: id.parse().map_err(|_| RepoError::BadCursor)?,
                        })
                    }
                    _ => return Err(RepoError::BadCursor),
                },
                _ => return Err(RepoError::BadCursor),
            };
        }
        Ok(cursor)
    }

    /// The shards still to read, with their positions.
    pub fn open_shards(&self) -> impl Iterator<Item = (usize, Position)> + '_ {
        self.0
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, p)| *p != Position::Done)
    }
}

/// What one shard's query returned: up to the page's `limit` entries in the page's order, and
/// whether it stopped before the shard's end (DynamoDB's `LastEvaluatedKey`).
#[derive(Debug, Clone, Default)]
pub struct ShardRead {
    /// The entries.
    pub items: Vec<Entry>,
    /// More may follow.
    pub more: bool,
}

fn order(a: &Entry, b: &Entry, oldest_first: bool) -> Ordering {
    if oldest_first {
        a.cmp(b)
    } else {
        b.cmp(a)
    }
}

/// Merges the reads of the open shards of `cursor` (each read from the shard's position, `limit`
/// entries at most) into the page of the first `limit` entries by (`status_since`,
/// `image_id`), oldest first when `oldest_first`; `next` holds each shard's new position, `None`
/// once every shard is exhausted. The caller fetches the rows ([`rows_in_order`]).
pub fn merge(
    cursor: &Cursor,
    reads: Vec<(usize, ShardRead)>,
    oldest_first: bool,
    limit: u32,
) -> Page<Entry> {
    let limit = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
    let mut shards: Vec<(usize, ShardRead)> =
        reads.into_iter().filter(|(n, _)| *n < SHARDS).collect();
    // How many entries each shard gives: its share of the first `limit` of the merge.
    let mut keys: Vec<(usize, &Entry)> = shards
        .iter()
        .flat_map(|(n, read)| read.items.iter().map(move |e| (*n, e)))
        .collect();
    keys.sort_by(|(_, a), (_, b)| order(a, b, oldest_first));
    let mut taken = [0_usize; SHARDS];
    for (n, _) in keys.into_iter().take(limit) {
        taken[n] += 1;
    }
    // Each shard gives a prefix of its own read, so its position (the last entry it gave)
    // leaves nothing of it behind even where the index orders entries with the same
    // `status_since` otherwise than by `image_id`.
    let mut next = cursor.clone();
    let mut items: Vec<Entry> = Vec::new();
    for (n, read) in &mut shards {
        let n = *n;
        let fetched = read.items.len();
        let given: Vec<Entry> = read.items.drain(..taken[n]).collect();
        if let Some(last) = given.last() {
            next.0[n] = Position::After(*last);
        }
        if taken[n] == fetched && !read.more {
            next.0[n] = Position::Done;
        }
        items.extend(given);
    }
    // Shards the caller did not read because the cursor has them done stay done; a shard it
    // should have read and did not is left where it was.
    items.sort_by(|a, b| order(a, b, oldest_first));
    let next = next
        .0
        .iter()
        .any(|p| *p != Position::Done)
        .then(|| next.encode());
    Page { items, next }
}

/// The rows of a merged page in its order, from the rows fetched by id (in any order): each
/// entry's row if it still has `status`. The index is eventually consistent and a row may have
/// moved on (completed, retried) since its entry was read: such a row is not on the page.
pub fn rows_in_order(
    entries: &[Entry],
    rows: Vec<ImageRecord>,
    status: Status,
) -> Vec<ImageRecord> {
    let mut by_id: HashMap<ImageId, ImageRecord> =
        rows.into_iter().map(|r| (r.image_id, r)).collect();
    entries
        .iter()
        .filter_map(|e| by_id.remove(&e.id))
        .filter(|r| r.processing_status == status)
        .collect()
}

/// Whether `entry` comes after `position` in a shard read in the given order (the fake's
/// `ExclusiveStartKey`).
pub fn after(entry: &Entry, position: Position, oldest_first: bool) -> bool {
    match position {
        Position::Start => true,
        Position::Done => false,
        Position::After(p) => {
            if oldest_first {
                *entry > p
            } else {
                *entry < p
            }
        }
    }
}

/// A fresh PNG row of owner `u1` (for the unit tests of the index and of the adapters that
/// store it).
#[cfg(test)]
pub(crate) fn test_row(upload_state: crate::domain::UploadState, at: Timestamp) -> ImageRecord {
    ImageRecord::new(
        crate::domain::NewImage {
            image_id: ImageId::new(),
            owner_id: "u1".parse().unwrap(),
            filename: None,
            content_type: crate::domain::ContentType::Png,
            byte_size: 1,
            sha256: None,
            upload_state,
        },
        at,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        let id: ImageId = "01J0000000000000000000000A".parse().unwrap();
        assert_eq!(shard(id), shard(id));
        let mut hits = [0_u32; SHARDS];
        for _ in 0..(100 * SHARDS) {
            hits[shard(ImageId::new())] += 1;
        }
        assert!(
            hits.iter().all(|h| (50..=150).contains(h)),
            "ids spread over every shard: {hits:?}"
        );
    }

    #[test]
    fn a_cursor_survives_its_wire_form_and_refuses_others() {
        let mut c = Cursor::default();
        c.0[3] = Position::Done;
        c.0[7] = Position::After(Entry {
            since: Timestamp::from_unix_millis(1_000),
            id: ImageId::new(),
        });
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in [
            "garbage!",
            &B64URL.encode(r#"{"image_id":"x","updated_at":"y"}"#),
            &B64URL.encode(r#"{"v":3,"s":[null]}"#),
            // A cursor of the 16-shard layout sorted by `updated_at`.
            &B64URL.encode(format!(r#"{{"v":2,"s":[{}]}}"#, ["null"; 16].join(","))),
        ] {
            assert!(matches!(Cursor::decode(bad), Err(RepoError::BadCursor)));
        }
    }
}

/// The index's behaviour through the in-memory images table, which pages with [`merge`] as the
/// DynamoDB adapter does (one read per shard from the cursor's position).
#[cfg(all(test, feature = "testing"))]
#[allow(clippy::unwrap_used)]
mod merging {
    use super::*;

    fn at(ms: i64) -> Entry {
        Entry::of(&super::through_the_fake::row(ms))
    }

    #[test]
    fn a_shard_gives_a_prefix_of_its_own_order_so_ties_the_index_orders_otherwise_are_not_lost() {
        let (mut a, mut b) = (at(1), at(1));
        if a.id > b.id {
            std::mem::swap(&mut a, &mut b);
        }
        let c = at(0);
        // Shard 0 holds two entries with the same `status_since`, in the order opposite to their
        // ids.
        let reads = vec![
            (
                0,
                ShardRead {
                    items: vec![b, a],
                    more: false,
                },
            ),
            (
                1,
                ShardRead {
                    items: vec![c],
                    more: false,
                },
            ),
        ];
        let page = merge(&Cursor::default(), reads, true, 2);
        assert_eq!(page.items, [c, b], "shard 0 gives its first entry");
        let next = Cursor::decode(&page.next.unwrap()).unwrap();
        assert_eq!(next.0[0], Position::After(b));
        assert_eq!(next.0[1], Position::Done);
        assert_eq!(
            next.0[2],
            Position::Start,
            "a shard not read stays where it was"
        );
    }
}

#[cfg(all(test, feature = "testing"))]
#[allow(clippy::unwrap_used)]
mod through_the_fake {
    use super::*;
    use crate::domain::{Stage, StageResult, UploadState};
    use crate::ops::backfill::{index_pass, StopWhen};
    use crate::ports::{BackfillRows as _, ImageRepository as _, StatusIndex as _, StatusPage};
    use crate::testing::MemoryImages;

    /// A stored PNG row of owner `u1`, created at `at_ms`.
    pub(super) fn row(at_ms: i64) -> ImageRecord {
        test_row(UploadState::Stored, Timestamp::from_unix_millis(at_ms))
    }

    /// 120 pending rows over few distinct times (many ties), so every shard holds some.
    fn table() -> (MemoryImages, Vec<ImageRecord>) {
        let images = MemoryImages::default();
        let mut all = Vec::new();
        for i in 0..120 {
            let r = row(1_000_000 + (i % 7) * 1000);
            images.insert(r.clone());
            all.push(r);
        }
        all.sort_by_key(|r| (r.status_since(), r.image_id));
        (images, all)
    }

    async fn every_page(
        images: &MemoryImages,
        status: Status,
        oldest_first: bool,
        limit: u32,
    ) -> Vec<Vec<ImageRecord>> {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = images
                .page_by_status(StatusPage {
                    status,
                    oldest_first,
                    limit,
                    cursor: cursor.as_deref(),
                })
                .await
                .unwrap();
            assert!(page.items.len() <= limit as usize);
            pages.push(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return pages,
            }
        }
    }

    #[tokio::test]
    async fn pages_merge_every_shard_in_order_both_ways() {
        let (images, all) = table();
        let used: std::collections::BTreeSet<usize> =
            all.iter().map(|r| shard(r.image_id)).collect();
        assert!(used.len() > 8, "the rows spread over the shards: {used:?}");
        for limit in [1, 7, 50, 500] {
            let pages = every_page(&images, Status::Pending, true, limit).await;
            let got: Vec<ImageId> = pages.iter().flatten().map(|r| r.image_id).collect();
            let want: Vec<ImageId> = all.iter().map(|r| r.image_id).collect();
            assert_eq!(got, want, "oldest first, limit {limit}");
            assert!(pages[..pages.len() - 1]
                .iter()
                .all(|p| p.len() == limit as usize));
            let pages = every_page(&images, Status::Pending, false, limit).await;
            let got: Vec<ImageId> = pages.iter().flatten().map(|r| r.image_id).collect();
            let want: Vec<ImageId> = all.iter().rev().map(|r| r.image_id).collect();
            assert_eq!(got, want, "newest first, limit {limit}");
        }
    }

    #[tokio::test]
    async fn a_cursor_resumes_every_shard_exactly_where_its_page_stopped() {
        let (images, all) = table();
        let first = images
            .page_by_status(StatusPage::oldest_first(Status::Pending, 10))
            .await
            .unwrap();
        let cursor = first.next.clone().unwrap();
        // A row behind its shard's position (older than everything, in a shard the first page
        // took from) and one ahead of every position. (A row older than the cursor in a shard
        // the page took nothing from does show: the shard resumes from its start.)
        let read_shard = shard(first.items[0].image_id);
        let behind = std::iter::repeat_with(|| row(1))
            .find(|r| shard(r.image_id) == read_shard)
            .unwrap();
        let ahead = row(9_000_000);
        images.insert(behind.clone());
        images.insert(ahead.clone());
        let again = images
            .page_by_status(StatusPage::oldest_first(Status::Pending, 10).after(Some(&cursor)))
            .await
            .unwrap();
        let twice = images
            .page_by_status(StatusPage::oldest_first(Status::Pending, 10).after(Some(&cursor)))
            .await
            .unwrap();
        assert_eq!(
            again.items, twice.items,
            "the same cursor gives the same page"
        );
        let ids = |rows: &[ImageRecord]| rows.iter().map(|r| r.image_id).collect::<Vec<_>>();
        assert_eq!(ids(&first.items), ids(&all[..10]));
        assert_eq!(
            ids(&again.items),
            ids(&all[10..20]),
            "no row skipped or repeated"
        );
        let mut rest = Vec::new();
        let mut next = again.next;
        while let Some(c) = next {
            let page = images
                .page_by_status(StatusPage::oldest_first(Status::Pending, 10).after(Some(&c)))
                .await
                .unwrap();
            rest.extend(page.items);
            next = page.next;
        }
        assert!(!rest.iter().any(|r| r.image_id == behind.image_id));
        assert_eq!(rest.last().map(|r| r.image_id), Some(ahead.image_id));
        assert!(matches!(
            images
                .page_by_status(
                    StatusPage::oldest_first(Status::Pending, 10).after(Some("not a cursor"))
                )
                .await,
            Err(RepoError::BadCursor)
        ));
    }

    #[tokio::test]
    async fn a_completed_row_leaves_the_index_and_its_counts() {
        let images = MemoryImages::default();
        let mut r = row(1_000);
        images.create(&r).await.unwrap();
        assert_eq!(images.count_by_status(Status::Pending).await.unwrap(), 1);
        assert!(images.in_status_index(r.image_id));
        let t = Timestamp::from_unix_millis(2_000);
        r.begin(Stage::Thumbnail, t).unwrap();
        images.update(&mut r).await.unwrap();
        assert_eq!(images.count_by_status(Status::Pending).await.unwrap(), 0);
        assert_eq!(images.count_by_status(Status::Processing).await.unwrap(), 1);
        for s in Stage::ALL {
            if s != Stage::Thumbnail {
                r.begin(s, t).unwrap();
            }
            r.complete(s, StageResult::default(), t).unwrap();
        }
        images.update(&mut r).await.unwrap();
        assert_eq!(r.processing_status, Status::Completed);
        assert!(!images.in_status_index(r.image_id));
        for s in [
            Status::Pending,
            Status::Processing,
            Status::Completed,
            Status::Failed,
        ] {
            assert_eq!(images.count_by_status(s).await.unwrap(), 0, "{s:?}");
            let page = images
                .page_by_status(StatusPage::oldest_first(s, 10))
                .await
                .unwrap();
            assert!(page.items.is_empty() && page.next.is_none(), "{s:?}");
        }
    }

    #[tokio::test]
    async fn the_backfill_indexes_the_rows_written_before_the_index_and_a_dry_run_counts_them() {
        let images = MemoryImages::default();
        let old_pending = row(1_000);
        let mut old_failed = row(2_000);
        old_failed.processing_status = Status::Failed;
        let mut old_completed = row(3_000);
        old_completed.processing_status = Status::Completed;
        for r in [&old_pending, &old_failed, &old_completed] {
            images.insert_unindexed(r.clone());
        }
        let fresh = row(4_000);
        images.insert(fresh.clone());
        assert_eq!(images.count_by_status(Status::Pending).await.unwrap(), 1);
        assert_eq!(images.count_by_status(Status::Failed).await.unwrap(), 0);

        let markers = crate::testing::MemoryMarkers::default();
        // One completion already counted by notify (its row among the two completed ones).
        *markers.counted.lock().unwrap() = 1;
        let mut done = row(100);
        done.processing_status = Status::Completed;
        images.insert_unindexed(done);
        let flag = std::sync::atomic::AtomicBool::new(false);
        let never = StopWhen {
            interrupted: &flag,
            deadline: None,
        };
        assert_eq!(
            index_pass(&images, &markers, true, &never).await.unwrap(),
            2,
            "dry run"
        );
        assert!(
            !images.in_status_index(old_pending.image_id),
            "a dry run writes nothing"
        );
        assert!(
            markers.completed_seed.lock().unwrap().is_none(),
            "nor seeds"
        );
        // A row its writer changed after the pass read it: the write (which put the key) wins.
        let mut raced = row(500);
        images.insert_unindexed(raced.clone());
        let stale = raced.clone();
        raced
            .begin(Stage::Thumbnail, Timestamp::from_unix_millis(600))
            .unwrap();
        images.update(&mut raced).await.unwrap();
        assert!(
            !images.index_row(&stale).await.unwrap(),
            "stale version: not written"
        );
        assert!(
            images.in_status_index(raced.image_id),
            "its writer indexed it"
        );
        assert_eq!(
            index_pass(&images, &markers, false, &never).await.unwrap(),
            2
        );
        assert_eq!(
            index_pass(&images, &markers, false, &never).await.unwrap(),
            0,
            "once"
        );
        assert_eq!(images.count_by_status(Status::Pending).await.unwrap(), 2);
        assert_eq!(images.count_by_status(Status::Failed).await.unwrap(), 1);
        assert!(!images.in_status_index(old_completed.image_id));
        // The completed total's seed: the completed rows from before, once.
        assert_eq!(*markers.completed_seed.lock().unwrap(), Some(2 - 1));
    }
}
