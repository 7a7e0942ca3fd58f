//! Download links that stay the same for a while. A link is signed as of the start of the
//! window it is asked in and lives two windows, so every request within one window gets the very
//! same URL (the browser's cache and a CDN's key on the whole URL), and every link handed out
//! still lives at least one whole window.

use std::time::Duration;

use super::Timestamp;

/// The shortest window: a link is at least this stable.
pub const MIN_WINDOW: Duration = Duration::from_secs(10);
/// The longest window: a SigV4 presigned URL lives at most 7 days, a link two windows.
pub const MAX_WINDOW: Duration = Duration::from_secs(3 * 24 * 3600);

/// When a link is signed and how long it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkWindow {
    /// The start of the window: the link's signing time.
    pub signed_at: Timestamp,
    /// Two windows.
    pub lifetime: Duration,
}

impl LinkWindow {
    /// The window of `window` length (clamped to [`MIN_WINDOW`]..=[`MAX_WINDOW`]) containing
    /// `now`, windows counted from the Unix epoch.
    pub fn containing(now: Timestamp, window: Duration) -> Self {
        let ms =
            i64::try_from(window.clamp(MIN_WINDOW, MAX_WINDOW).as_millis()).unwrap_or(i64::MAX / 4);
        let start = now.unix_millis().div_euclid(ms) * ms;
        LinkWindow {
            signed_at: Timestamp::from_unix_millis(start),
            lifetime: Duration::from_millis(ms.unsigned_abs() * 2),
        }
    }

    /// When links of this window stop working.
    pub fn expires_at(&self) -> Timestamp {
        let ms = i64::try_from(self.lifetime.as_millis()).unwrap_or(i64::MAX / 4);
        Timestamp::from_unix_millis(self.signed_at.unix_millis().saturating_add(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_moment_of_a_window_gets_the_same_link_and_it_outlives_the_window() {
        let hour = Duration::from_secs(3600);
        let start = Timestamp::from_unix_millis(1_800_000_000_000 / 3_600_000 * 3_600_000);
        let a = LinkWindow::containing(start, hour);
        let b = LinkWindow::containing(start.plus_secs(3599), hour);
        assert_eq!(a, b);
        assert_eq!(a.signed_at, start);
        assert_eq!(a.expires_at(), start.plus_secs(7200));
        let next = LinkWindow::containing(start.plus_secs(3600), hour);
        assert_eq!(next.signed_at, start.plus_secs(3600));
        // Asked at the window's last second, the link still lives a whole window more.
        assert!(b.expires_at().unix_millis() - start.plus_secs(3599).unix_millis() > 3_600_000);
    }

    #[test]
    fn windows_are_clamped_to_what_a_signature_allows() {
        let now = Timestamp::now();
        assert_eq!(
            LinkWindow::containing(now, Duration::ZERO).lifetime,
            MIN_WINDOW * 2
        );
        assert_eq!(
            LinkWindow::containing(now, Duration::from_secs(30 * 24 * 3600)).lifetime,
            MAX_WINDOW * 2
        );
    }
}
