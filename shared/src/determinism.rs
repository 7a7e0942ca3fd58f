//! The clock and the randomness the pipeline reads, made replaceable for the deterministic
//! simulator (`safelight-sim`). Compiled only with the `testing` feature, so nothing here exists
//! in the AWS build: there `Timestamp::now()` is the system clock and jitter is `rand`'s.
//!
//! [`install`] makes, for the calling thread only, [`Timestamp::now`](crate::Timestamp::now)
//! read a virtual clock (an epoch plus the time elapsed on tokio's clock, which a paused
//! current-thread runtime advances only when every task waits) and every jitter draw come from a
//! seeded generator, so one seed replays one schedule exactly.

use std::cell::RefCell;

struct Installed {
    epoch_ms: i64,
    started: tokio::time::Instant,
    rng: u64,
}

thread_local! {
    static INSTALLED: RefCell<Option<Installed>> = const { RefCell::new(None) };
}

/// Makes this thread's clock virtual (starting at `epoch_ms`, advancing with tokio's clock) and
/// its jitter seeded. Call from inside the runtime that will run the simulation.
pub fn install(epoch_ms: i64, seed: u64) {
    INSTALLED.with(|i| {
        *i.borrow_mut() = Some(Installed {
            epoch_ms,
            started: tokio::time::Instant::now(),
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
        });
    });
}

/// Back to the system clock and `rand`.
pub fn uninstall() {
    INSTALLED.with(|i| *i.borrow_mut() = None);
}

/// Whether the simulator's clock is installed on this thread.
pub(crate) fn installed() -> bool {
    INSTALLED.with(|i| i.borrow().is_some())
}

/// The virtual time, when installed on this thread.
pub(crate) fn now_ms() -> Option<i64> {
    INSTALLED.with(|i| {
        i.borrow().as_ref().map(|s| {
            let elapsed = tokio::time::Instant::now().duration_since(s.started);
            s.epoch_ms + i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX / 2)
        })
    })
}

/// A uniform draw in `[0, 1)` from the seeded generator, when installed on this thread.
pub(crate) fn unit() -> Option<f64> {
    INSTALLED.with(|i| {
        i.borrow_mut().as_mut().map(|s| {
            // SplitMix64: small, fast, and good enough for jitter.
            s.rng = s.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s.rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64
        })
    })
}
