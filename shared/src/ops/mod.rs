//! Operations: what the `admin`, `backfill` and `sweeper` functions do, over the ports and
//! without AWS types.
//!
//! - [`queue_view`]: the processing-queue view (counts by status from the `by_status_v2` index
//!   and the completed counter, queue and DLQ depths, breakers, the oldest pending image, recent
//!   failures, per-minute throughput).
//! - [`circuits`]: closing a circuit breaker by hand.
//! - [`retry`]: the owner's retry of one failed image (and the reset retry-all repeats).
//! - [`retry_all`]: re-enqueueing failed images and bringing DLQ messages back, page by page.
//! - [`backfill`]: the migration of existing originals, with its dry run and run-once marker.
//! - [`settings`]: the tunables, read from the environment.
//! - [`sweep`]: the `sweeper` function's sweep that leaves no row behind (dead letters, uploads
//!   that never came, rows that never end).

pub mod backfill;
pub mod circuits;
pub mod queue_view;
pub mod retry;
pub mod retry_all;
pub mod settings;
pub mod sweep;

pub use settings::OpsSettings;

use crate::domain::Timestamp;
use crate::ports::{QueueError, RepoError, StoreError};

/// A port call of an operation failed; the operation stops there (every write it made is a
/// conditional or idempotent one, so the next call carries on).
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The bucket failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A table failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The start of the minute `at` falls in (the key of its throughput counter).
pub fn minute_start(at: Timestamp) -> Timestamp {
    let ms = at.unix_millis();
    Timestamp::from_unix_millis(ms - ms.rem_euclid(60_000))
}

/// The `minutes` whole minutes (1 to 100) ending with the one of `now`, oldest first: the window
/// [`ThroughputLog::recent`](crate::ports::ThroughputLog::recent) answers for.
pub fn recent_minutes(now: Timestamp, minutes: u32) -> impl Iterator<Item = Timestamp> {
    let last = minute_start(now).unix_millis();
    (0..i64::from(minutes.clamp(1, 100)))
        .rev()
        .map(move |i| Timestamp::from_unix_millis(last - i * 60_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_starts_on_its_first_millisecond() {
        let t = Timestamp::from_unix_millis(1_800_000_059_999);
        assert_eq!(minute_start(t).unix_millis(), 1_800_000_000_000);
        assert_eq!(minute_start(minute_start(t)), minute_start(t));
        assert_eq!(minute_start(t).unix_millis() % 60_000, 0);
    }

    #[test]
    fn the_recent_minutes_end_with_the_current_one_oldest_first_and_number_1_to_100() {
        let now = Timestamp::from_unix_millis(1_800_000_059_999);
        let three: Vec<i64> = recent_minutes(now, 3).map(|m| m.unix_millis()).collect();
        assert_eq!(
            three,
            [1_799_999_880_000, 1_799_999_940_000, 1_800_000_000_000]
        );
        assert_eq!(recent_minutes(now, 0).count(), 1);
        assert_eq!(recent_minutes(now, 500).count(), 100);
    }
}
