//! Fairness between owners: per-owner limits on upload requests (a fixed-window rate), on
//! uploads awaiting their bytes, on open WebSocket connections, and the size of one `resume`
//! page. Pure rules over the time and the counts the ports report; the handlers turn a
//! [`Refusal`] into a 429 with `Retry-After`.

use std::time::Duration;

use crate::domain::Timestamp;

/// The upload rate's window: requests are counted per owner per whole minute.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// The `Retry-After` of a refused `$connect`: a slot frees when the owner closes a socket,
/// which nothing predicts; long enough that a reconnect loop stays cheap.
pub const CONNECTIONS_RETRY_AFTER_SECS: u64 = 30;

/// The longest `Retry-After` of a refusal for uploads awaiting their bytes: a slot also frees
/// when one of them arrives, usually much sooner than its link expires.
pub const AWAITING_RETRY_AFTER_CAP_SECS: u64 = 10;

/// The per-owner limits, with their defaults (read from the environment, with their bounds, by
/// [`crate::config::Config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct OwnerLimits {
    /// `UPLOADS_PER_MINUTE`: upload requests an owner may make per minute (default 300).
    pub uploads_per_minute: u32,
    /// `MAX_AWAITING_UPLOADS`: presigned uploads an owner may have whose bytes have not arrived
    /// and whose link still works (default 50).
    pub max_awaiting_uploads: u32,
    /// `MAX_CONNECTIONS_PER_OWNER`: open WebSocket connections per owner (default 10).
    #[serde(rename = "max_connections_per_owner")]
    pub max_connections: u32,
    /// `RESUME_PAGE_SIZE`: notices one `resume` replays before it answers with a continuation
    /// (default 100).
    #[serde(rename = "resume_page_size")]
    pub resume_page: u32,
}

impl Default for OwnerLimits {
    fn default() -> Self {
        OwnerLimits {
            uploads_per_minute: 300,
            max_awaiting_uploads: 50,
            max_connections: 10,
            resume_page: 100,
        }
    }
}

/// Why a request is refused, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many upload requests in this minute.
    UploadRate {
        /// Seconds until the window ends.
        retry_after_secs: u64,
    },
    /// Too many uploads awaiting their bytes.
    AwaitingUploads {
        /// Seconds until a slot is free at the latest (capped, see
        /// [`AWAITING_RETRY_AFTER_CAP_SECS`]).
        retry_after_secs: u64,
    },
    /// Too many open WebSocket connections.
    Connections {
        /// [`CONNECTIONS_RETRY_AFTER_SECS`].
        retry_after_secs: u64,
    },
}

impl Refusal {
    /// Seconds the caller should wait (at least 1).
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Refusal::UploadRate { retry_after_secs }
            | Refusal::AwaitingUploads { retry_after_secs }
            | Refusal::Connections { retry_after_secs } => retry_after_secs.max(1),
        }
    }
}

/// The start of the rate window holding `now`.
pub fn window_start(now: Timestamp) -> Timestamp {
    let len = window_millis();
    let ms = now.unix_millis();
    Timestamp::from_unix_millis(ms - ms.rem_euclid(len))
}

fn window_millis() -> i64 {
    i64::try_from(RATE_WINDOW.as_millis()).unwrap_or(60_000)
}

/// Whole seconds from `now` until `at`, rounded up, at least 1.
fn secs_until(at: Timestamp, now: Timestamp) -> u64 {
    let ms = at.unix_millis().saturating_sub(now.unix_millis()).max(0);
    u64::try_from((ms + 999) / 1000).unwrap_or(1).max(1)
}

/// The refusal of an upload request that found the owner's window full.
pub fn upload_rate_refusal(now: Timestamp) -> Refusal {
    let ends = Timestamp::from_unix_millis(window_start(now).unix_millis() + window_millis());
    Refusal::UploadRate {
        retry_after_secs: secs_until(ends, now),
    }
}

/// Only uploads created after this may still be awaiting their bytes with a working link.
pub fn awaiting_horizon(now: Timestamp, link_lifetime: Duration) -> Timestamp {
    let ms = i64::try_from(link_lifetime.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_unix_millis(now.unix_millis().saturating_sub(ms))
}

/// Whether another presigned upload is refused, given when the owner's uploads that await their
/// bytes (created after [`awaiting_horizon`]) were created, oldest first.
pub fn awaiting_refusal(
    awaiting: &[Timestamp],
    limit: u32,
    link_lifetime: Duration,
    now: Timestamp,
) -> Option<Refusal> {
    if awaiting.len() < usize::try_from(limit).unwrap_or(usize::MAX) {
        return None;
    }
    // The oldest link expires first; an arrival may free a slot sooner.
    let oldest = awaiting.iter().min().copied().unwrap_or(now);
    let frees = oldest.plus_secs(i64::try_from(link_lifetime.as_secs()).unwrap_or(i64::MAX));
    Some(Refusal::AwaitingUploads {
        retry_after_secs: secs_until(frees, now).min(AWAITING_RETRY_AFTER_CAP_SECS),
    })
}

/// Whether a new WebSocket connection is refused, given how many the owner has open.
pub fn connections_refusal(open: usize, limit: u32) -> Option<Refusal> {
    (open >= usize::try_from(limit).unwrap_or(usize::MAX)).then_some(Refusal::Connections {
        retry_after_secs: CONNECTIONS_RETRY_AFTER_SECS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(ms)
    }

    #[test]
    fn the_rate_window_is_the_whole_minute_and_retry_after_is_what_is_left_of_it() {
        let now = at(1_700_000_012_300); // 12.3 s into its minute (1_700_000_000 = 20 s into one)
        let start = window_start(now);
        assert_eq!(start.unix_millis() % 60_000, 0);
        assert!(start <= now && now.unix_millis() - start.unix_millis() < 60_000);
        let left = 60_000 - (now.unix_millis() - start.unix_millis());
        assert_eq!(
            upload_rate_refusal(now).retry_after_secs(),
            u64::try_from((left + 999) / 1000).unwrap()
        );
        assert_eq!(
            upload_rate_refusal(start).retry_after_secs(),
            60,
            "a full window left"
        );
        let last = at(start.unix_millis() + 59_999);
        assert_eq!(upload_rate_refusal(last).retry_after_secs(), 1, "never 0");
    }

    #[test]
    fn awaiting_uploads_are_refused_at_the_limit_until_the_oldest_link_expires_capped() {
        let now = at(1_700_000_000_000);
        let life = Duration::from_secs(900);
        let made = |secs_ago: i64| now.plus_secs(-secs_ago);
        assert_eq!(awaiting_refusal(&[made(5), made(3)], 3, life, now), None);
        let full = [made(895), made(10), made(3)];
        assert_eq!(
            awaiting_refusal(&full, 3, life, now),
            Some(Refusal::AwaitingUploads {
                retry_after_secs: 5
            }),
            "the oldest link expires in 5 s"
        );
        let young = [made(20), made(10), made(3)];
        assert_eq!(
            awaiting_refusal(&young, 3, life, now).map(Refusal::retry_after_secs),
            Some(AWAITING_RETRY_AFTER_CAP_SECS)
        );
        assert_eq!(awaiting_horizon(now, life), made(900));
    }

    #[test]
    fn connections_are_refused_once_the_owner_has_the_limit_open() {
        assert_eq!(connections_refusal(9, 10), None);
        assert_eq!(
            connections_refusal(10, 10).map(Refusal::retry_after_secs),
            Some(CONNECTIONS_RETRY_AFTER_SECS)
        );
    }
}
