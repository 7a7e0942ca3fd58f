//! The retry policy for transient failures: exponential backoff with full jitter, expressed as
//! the SQS visibility timeout of the failed message.

use std::time::Duration;

/// How many receives a message gets before SQS moves it to the DLQ (the template's
/// `maxReceiveCount`).
pub const MAX_RECEIVES: u32 = 3;

/// `min(cap, base * 2^(receive-1))`, scaled by full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay ceiling before jitter for the first retry.
    pub base: Duration,
    /// Largest delay ceiling.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The ceiling for a message received `receive_count` times (1 for the first receive).
    pub fn ceiling(&self, receive_count: u32) -> Duration {
        let exp = receive_count.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.cap)
    }

    /// The delay before the next attempt: `jitter` (uniform in `[0, 1)`) times the ceiling
    /// ("full jitter"), rounded up to whole seconds as SQS visibility requires, at least 1 s.
    pub fn delay(&self, receive_count: u32, jitter: f64) -> Duration {
        let ceiling = self.ceiling(receive_count).as_secs_f64();
        let secs = (ceiling * jitter.clamp(0.0, 1.0)).ceil().max(1.0);
        Duration::from_secs(secs as u64)
    }

    /// [`Backoff::delay`] with a random jitter.
    pub fn random_delay(&self, receive_count: u32) -> Duration {
        self.delay(receive_count, jitter())
    }
}

/// A uniform draw in `[0, 1)` for jitter: `rand`'s, or the simulator's seeded one when it is
/// installed (feature `testing` only, see `crate::determinism`).
pub fn jitter() -> f64 {
    #[cfg(feature = "testing")]
    if let Some(u) = crate::determinism::unit() {
        return u;
    }
    rand::random::<f64>()
}

/// Whether this receive is the last one before the DLQ.
pub fn is_last_receive(receive_count: u32) -> bool {
    receive_count >= MAX_RECEIVES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_per_receive_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(20),
        };
        let ceilings: Vec<u64> = (1..=6).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, vec![2, 4, 8, 16, 20, 20]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(20));
    }

    #[test]
    fn full_jitter_spreads_delays_over_the_whole_range() {
        let b = Backoff {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(600),
        };
        assert_eq!(
            b.delay(3, 0.0),
            Duration::from_secs(1),
            "never zero: SQS would redeliver at once"
        );
        assert_eq!(b.delay(3, 0.5), Duration::from_secs(20));
        assert_eq!(b.delay(3, 1.0), Duration::from_secs(40));
        let delays: Vec<u64> = (0..200).map(|_| b.random_delay(3).as_secs()).collect();
        assert!(delays.iter().all(|d| (1..=40).contains(d)));
        assert!(
            delays.iter().any(|d| *d < 15) && delays.iter().any(|d| *d > 25),
            "not jittered: {delays:?}"
        );
    }

    #[test]
    fn the_third_receive_is_the_last() {
        assert!(!is_last_receive(1));
        assert!(!is_last_receive(2));
        assert!(is_last_receive(3));
    }
}
