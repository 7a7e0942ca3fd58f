//! The rate limit of a run: enqueues spaced `1 / rate` seconds apart.

use std::time::Duration;

use tokio::time::Instant;

/// Spaces enqueues `1 / rate` seconds apart.
#[derive(Debug)]
pub(super) struct Pacer {
    gap: Duration,
    next: Instant,
}

impl Pacer {
    pub(super) fn new(rate_per_sec: u32) -> Self {
        Pacer {
            gap: Duration::from_secs(1) / rate_per_sec.max(1),
            next: Instant::now(),
        }
    }

    pub(super) async fn wait(&mut self) {
        let now = Instant::now();
        if self.next > now {
            tokio::time::sleep(self.next - now).await;
        }
        self.next = self.next.max(now) + self.gap;
    }
}
