//! What the backfill migration reads and repairs: the bucket's originals, rows in any shape, run-once markers.

use std::future::Future;

use super::{Page, PageRequest, RepoError, StoreError};
use crate::domain::{ImageId, ImageRecord, LegacyRow, Marker, ObjectKey, Status};

/// An object under `originals/`, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedOriginal {
    /// Its key (not yet checked to be one Safelight made).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The bucket as the migration walks it.
pub trait OriginalsSource: Send + Sync {
    /// Up to `limit` keys under `originals/`, in key order, after `start_after`. `next` is the
    /// last key when more may follow.
    fn list_originals(
        &self,
        start_after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<ListedOriginal>, StoreError>> + Send;
    /// The first `n` bytes of an object (enough for its magic bytes and header); `None` when it
    /// is gone.
    fn head_bytes(
        &self,
        key: &ObjectKey,
        n: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;
}

/// A row as the migration finds it: in the current model, or written by an older system
/// without the status fields (or some of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredRow {
    /// A complete row of the current model.
    Current(Box<ImageRecord>),
    /// A row that cannot be read as one: what it does carry.
    Legacy(LegacyRow),
}

/// The images table as the migration reads and repairs it.
pub trait BackfillRows: Send + Sync {
    /// Reads a row in whatever shape it is.
    fn read_row(
        &self,
        id: ImageId,
    ) -> impl Future<Output = Result<Option<StoredRow>, RepoError>> + Send;
    /// Replaces a legacy row (one without `version`) by `record`; `Conflict` if the row is gone
    /// or has been written in the current model meanwhile.
    fn replace_legacy(
        &self,
        record: &ImageRecord,
    ) -> impl Future<Output = Result<(), RepoError>> + Send;
    /// One page of the rows with status `page.of` that lack `by_status_v2`'s `status_key`
    /// (written before the index existed), read from the old `by_status` index. Removed with
    /// `by_status` in the release after.
    fn page_unindexed(
        &self,
        page: PageRequest<'_, Status>,
    ) -> impl Future<Output = Result<Page<ImageRecord>, RepoError>> + Send;
    /// Gives the row its `status_key` (a conditional write on its `version` and on the key's
    /// absence); `false` when the row changed meanwhile (its writer put the key) or has it.
    fn index_row(
        &self,
        record: &ImageRecord,
    ) -> impl Future<Output = Result<bool, RepoError>> + Send;
    /// How many rows are completed (COUNT queries on the old `by_status` index: the completed
    /// total's seed, computed once).
    fn count_completed(&self) -> impl Future<Output = Result<u64, RepoError>> + Send;
}

/// Run-once markers of migrations in `CONTROL_TABLE` (`migration#{name}`), written only with
/// conditional puts on their `version`.
pub trait MarkerStore: Send + Sync {
    /// The marker and its version (0 when absent).
    fn load_marker(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<(Marker, u64)>, RepoError>> + Send;
    /// Writes the marker if it still has `expected_version` (0: if absent); `Conflict` otherwise.
    fn save_marker(
        &self,
        name: &str,
        marker: &Marker,
        expected_version: u64,
    ) -> impl Future<Output = Result<(), RepoError>> + Send;
    /// The completed total's counted part (the sum of its shards), or `None` once it has its
    /// seed.
    fn completed_counted(&self) -> impl Future<Output = Result<Option<u64>, RepoError>> + Send;
    /// Seeds the completed total, once (a conditional put): `seed` is added to the counted part
    /// (the completed rows minus those already counted; negative when rows were removed); `false`
    /// when a concurrent run seeded it first.
    fn seed_completed(&self, seed: i64) -> impl Future<Output = Result<bool, RepoError>> + Send;
}
