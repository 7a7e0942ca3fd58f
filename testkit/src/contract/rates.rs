//! [`RateCounter`]: one window counts up to its limit, then refuses without counting.

use std::time::Duration;

use safelight::ports::RateCounter;
use safelight::Timestamp;

use super::fresh_owner;

const WINDOW: Duration = Duration::from_secs(60);

/// A window counts `limit` requests and refuses the next; the next window and other owners
/// count on their own.
pub async fn a_window_counts_up_to_its_limit<R: RateCounter>(r: &R) {
    let owner = fresh_owner();
    let start = Timestamp::from_unix_millis(Timestamp::now().unix_millis() / 60_000 * 60_000);
    for _ in 0..2 {
        assert!(r.take(&owner, start, WINDOW, 2).await.expect("take"));
    }
    for _ in 0..2 {
        assert!(!r.take(&owner, start, WINDOW, 2).await.expect("take"));
    }
    // A refusal counts nothing: a higher limit has room for exactly one more.
    assert!(r.take(&owner, start, WINDOW, 3).await.expect("take"));
    assert!(!r.take(&owner, start, WINDOW, 3).await.expect("take"));
    assert!(r
        .take(&owner, start.plus_secs(60), WINDOW, 2)
        .await
        .expect("take"));
    assert!(r
        .take(&fresh_owner(), start, WINDOW, 2)
        .await
        .expect("take"));
}

/// Every rule of this module as a test of the counter `make` evaluates to.
#[macro_export]
macro_rules! rate_counter_contract {
    ($make:expr) => {
        $crate::contract_rules!($make, rates, [a_window_counts_up_to_its_limit]);
    };
}
