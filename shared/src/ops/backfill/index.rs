//! The index pass: gives the rows written before the `by_status_v2` index existed their
//! `status_key`, and seeds the completed total once.

use super::{BackfillError, StopWhen};
use crate::ports::{BackfillRows, MarkerStore, PageRequest};

/// Rows read per page of the index pass.
const INDEX_PAGE: u32 = 100;

/// Seeds the completed total once, then gives every `pending`, `processing` and `failed` row
/// without a `status_key` one (`dry_run`: only counts them); returns how many. Stops early when `stop` says so (the next call carries on:
/// the rows done no longer lack the key).
pub async fn index_pass<R: BackfillRows, M: MarkerStore>(
    rows: &R,
    markers: &M,
    dry_run: bool,
    stop: &StopWhen<'_>,
) -> Result<u64, BackfillError> {
    // The completed total counts the completions notify saw; its seed adds the completed rows
    // it did not: all completed rows (the old index still holds them) minus those counted, read
    // after the COUNT, so a completion during the COUNT (at the end of the index's order, read
    // last) is in both and cancels out. Only a completion still in the stream's lag at that
    // instant is counted twice (about a second's worth).
    if !dry_run && markers.completed_counted().await?.is_some() {
        let rows_completed = rows.count_completed().await?;
        if let Some(counted) = markers.completed_counted().await? {
            let seed = i64::try_from(rows_completed).unwrap_or(i64::MAX)
                - i64::try_from(counted).unwrap_or(i64::MAX);
            if markers.seed_completed(seed).await? {
                tracing::info!(rows_completed, counted, seed, "completed total seeded");
            }
        }
    }
    let mut indexed = 0;
    for status in crate::status_index::INDEXED {
        let mut cursor: Option<String> = None;
        loop {
            let page = rows
                .page_unindexed(PageRequest {
                    of: status,
                    limit: INDEX_PAGE,
                    cursor: cursor.as_deref(),
                })
                .await?;
            for row in &page.items {
                if dry_run || rows.index_row(row).await? {
                    indexed += 1;
                }
            }
            match page.next {
                Some(next) if !stop.now() => cursor = Some(next),
                _ => break,
            }
        }
    }
    if indexed > 0 {
        tracing::info!(rows = indexed, dry_run, "rows given their status index key");
    }
    Ok(indexed)
}
