//! Circuit-breaker rules, pure. The state lives in `CONTROL_TABLE` (`circuit#{stage}`) and is
//! changed only by conditional writes on its `version`, so concurrent invocations lose no failure
//! and exactly one of them opens the circuit.
//!
//! Closed: work proceeds; transient failures are remembered for a rolling window. The circuit
//! opens for `cooldown` when both hold (the Hystrix-style rule, with the contract's count as its
//! minimum volume):
//! - at least `threshold` failures within the window (the product contract: 5 in an hour), and
//! - failures dominate: the remembered failures are at least `min_failure_percent` of the
//!   attempts behind them. Each failure is stored with the attempts its process made in the last
//!   `rate_window` and had not reported yet ([`AttemptWindow`]), so the share is pooled over every
//!   process that failed, while successes write nothing to the shared row.
//!
//! At low volume, or in an outage, every attempt fails and the 5th failure opens the circuit as
//! the contract says; at high volume a background error rate of a few percent never does (5
//! failures behind hundreds of attempts). Rows written before the share existed count each of
//! their failures as one attempt (failures dominate: the old rule).
//!
//! While open, work is deferred (not failed). After the cool-down one invocation takes the
//! half-open probe (a lease for `probe_lease`); its success closes the circuit, its failure
//! reopens it.
//!
//! Each process keeps the row it last read for `cache_ttl` ([`CachedCircuit`]) and decides from
//! it when the decision changes nothing (closed: proceed; open: defer), so the hot row takes one
//! strongly consistent read per process per few seconds, not one per message. Anything that
//! changes the row (taking the probe, a failure, a probe's success) reads it afresh and writes it
//! conditionally, so exactly one process takes each probe.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::Timestamp;

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures within `window` that open the circuit (default 5).
    pub threshold: u32,
    /// The rolling window (default 1 h).
    pub window: Duration,
    /// How long the circuit stays open before a probe (default 60 s).
    pub cooldown: Duration,
    /// How long a probe may take before another invocation may probe (the function timeout).
    pub probe_lease: Duration,
    /// The share of attempts (percent) the remembered failures must reach to open (default 50).
    pub min_failure_percent: u32,
    /// How far back a process counts its own attempts for the share (default 60 s).
    pub rate_window: Duration,
    /// How long a process decides from the breaker row it last read (default 3 s).
    pub cache_ttl: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            threshold: 5,
            window: Duration::from_secs(3600),
            cooldown: Duration::from_secs(60),
            probe_lease: Duration::from_secs(30),
            min_failure_percent: 50,
            rate_window: Duration::from_secs(60),
            cache_ttl: Duration::from_secs(3),
        }
    }
}

/// Where the circuit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Work proceeds.
    Closed,
    /// Work is deferred until the cool-down ends.
    Open,
    /// One probe is in flight.
    HalfOpen,
}

/// The stored breaker row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    /// Current state.
    pub state: CircuitState,
    /// Recent transient failures (milliseconds since the epoch), oldest first, within the window.
    #[serde(default)]
    pub failures: Vec<i64>,
    /// For each of `failures`, the attempts behind it (its process's unreported attempts in the
    /// rate window, itself included). Missing entries (older rows) count as 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<u32>,
    /// When the circuit opened last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<Timestamp>,
    /// Open: when the cool-down ends. Half-open: when the probe's lease ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// How many times the circuit has opened (for the admin view and tests).
    #[serde(default)]
    pub times_opened: u64,
    /// When an operator last closed the circuit by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_at: Option<Timestamp>,
    /// Who closed it by hand (the admin's `sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_by: Option<String>,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: CircuitState::Closed,
            failures: Vec::new(),
            attempts: Vec::new(),
            opened_at: None,
            until: None,
            times_opened: 0,
            reset_at: None,
            reset_by: None,
        }
    }
}

/// What the breaker lets an invocation do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go ahead.
    Proceed,
    /// The caller took the half-open probe (the new state must be written conditionally; only
    /// the writer that wins may probe).
    Probe,
    /// Open, or another probe is in flight: defer the work until then.
    DeferUntil(Timestamp),
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Breaker {
    /// Decides whether work may proceed at `now`; may change the state (taking the probe).
    /// Returns whether the state changed and so must be written.
    pub fn admit(&mut self, now: Timestamp, config: &BreakerConfig) -> (Admission, bool) {
        let until = self.until.unwrap_or(now);
        match self.state {
            CircuitState::Closed => (Admission::Proceed, false),
            CircuitState::Open | CircuitState::HalfOpen if now < until => {
                (Admission::DeferUntil(until), false)
            }
            // Cool-down over, or the previous probe's lease ran out: take the probe.
            CircuitState::Open | CircuitState::HalfOpen => {
                self.state = CircuitState::HalfOpen;
                self.until = Some(Timestamp::from_unix_millis(
                    now.unix_millis() + millis(config.probe_lease),
                ));
                (Admission::Probe, true)
            }
        }
    }

    /// Records a transient failure seen after `attempts` attempts of its process (see
    /// [`AttemptWindow::take_unreported`]; 0 counts as 1). Returns whether this failure opened
    /// the circuit (the state always changes: the failure is remembered).
    pub fn record_failure(
        &mut self,
        now: Timestamp,
        attempts: u32,
        config: &BreakerConfig,
    ) -> bool {
        let now_ms = now.unix_millis();
        let horizon = now_ms - millis(config.window);
        self.align_attempts();
        let mut kept = self
            .failures
            .iter()
            .zip(&self.attempts)
            .filter(|(t, _)| **t > horizon)
            .map(|(t, a)| (*t, *a))
            .collect::<Vec<_>>();
        kept.push((now_ms, attempts.max(1)));
        // Only the most recent `threshold` failures matter.
        let keep = config.threshold.max(1) as usize;
        if kept.len() > keep {
            kept.drain(..kept.len() - keep);
        }
        (self.failures, self.attempts) = kept.into_iter().unzip();
        let reopen = self.state == CircuitState::HalfOpen;
        let trip = self.state == CircuitState::Closed
            && self.failures.len() >= keep
            && self.failures_dominate(config);
        if reopen || trip {
            self.state = CircuitState::Open;
            self.opened_at = Some(now);
            self.until = Some(Timestamp::from_unix_millis(
                now_ms + millis(config.cooldown),
            ));
            self.times_opened += 1;
            return true;
        }
        false
    }

    /// Whether the remembered failures are at least `min_failure_percent` of the attempts
    /// behind them.
    pub fn failures_dominate(&self, config: &BreakerConfig) -> bool {
        let failures = self.failures.len() as u64;
        let attempts: u64 = (0..self.failures.len())
            .map(|i| u64::from(self.attempts.get(i).copied().unwrap_or(1).max(1)))
            .sum();
        failures * 100 >= u64::from(config.min_failure_percent) * attempts
    }

    /// One attempts entry per failure: older rows have none (each counts as 1).
    fn align_attempts(&mut self) {
        self.attempts.resize(self.failures.len(), 1);
    }

    /// An operator closes the circuit by hand: failures are forgotten, work proceeds at once,
    /// and who did it when is kept on the row.
    pub fn reset(&mut self, now: Timestamp, by: &str) {
        self.state = CircuitState::Closed;
        self.failures.clear();
        self.attempts.clear();
        self.until = None;
        self.reset_at = Some(now);
        self.reset_by = Some(by.to_owned());
    }

    /// The transient failures remembered within the window ending at `now`.
    pub fn failures_in_window(&self, now: Timestamp, config: &BreakerConfig) -> usize {
        let horizon = now.unix_millis() - millis(config.window);
        self.failures.iter().filter(|t| **t > horizon).count()
    }

    /// Seconds until the next half-open probe may start: the rest of the cool-down while open,
    /// the rest of the probe's lease while half-open, `None` while closed.
    pub fn next_probe_in_secs(&self, now: Timestamp) -> Option<u64> {
        match self.state {
            CircuitState::Closed => None,
            CircuitState::Open | CircuitState::HalfOpen => {
                let until = self.until.map_or(0, Timestamp::unix_millis);
                let left_ms = (until - now.unix_millis()).max(0);
                Some(u64::try_from(left_ms).unwrap_or(0).div_ceil(1000))
            }
        }
    }

    /// Records a success. Returns whether the state changed (a probe closed the circuit).
    pub fn record_success(&mut self) -> bool {
        if self.state == CircuitState::Closed {
            return false;
        }
        self.state = CircuitState::Closed;
        self.failures.clear();
        self.attempts.clear();
        self.until = None;
        true
    }
}

/// One process's own attempts (admissions) in the last `rate_window`, kept in memory: the
/// denominator of the failure share, reported only along with a failure, so a success costs no
/// write to the shared row.
#[derive(Debug, Clone, Default)]
pub struct AttemptWindow {
    /// Attempt times (milliseconds since the epoch), oldest first, within the rate window.
    times: std::collections::VecDeque<i64>,
    /// Attempts up to this time have been reported with a failure.
    reported_through: i64,
}

/// At most this many attempts are remembered (a process making more within the rate window
/// reports this many: the share is then far below any sensible percentage anyway).
const MAX_REMEMBERED_ATTEMPTS: usize = 10_000;

impl AttemptWindow {
    /// Remembers an attempt at `now`.
    pub fn record(&mut self, now: Timestamp, config: &BreakerConfig) {
        let now_ms = now.unix_millis();
        self.forget_before(now_ms - millis(config.rate_window));
        if self.times.len() >= MAX_REMEMBERED_ATTEMPTS {
            self.times.pop_front();
        }
        self.times.push_back(now_ms);
    }

    /// The attempts within the rate window not yet reported (at least 1: the failing attempt
    /// itself), marking them reported.
    pub fn take_unreported(&mut self, now: Timestamp, config: &BreakerConfig) -> u32 {
        let now_ms = now.unix_millis();
        self.forget_before(now_ms - millis(config.rate_window));
        let from = self.reported_through;
        let n = self.times.iter().filter(|t| **t > from).count();
        self.reported_through = now_ms;
        u32::try_from(n).unwrap_or(u32::MAX).max(1)
    }

    fn forget_before(&mut self, horizon: i64) {
        while self.times.front().is_some_and(|t| *t <= horizon) {
            self.times.pop_front();
        }
    }
}

/// The breaker row as a process last read or wrote it, trusted for `cache_ttl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedCircuit {
    /// The row.
    pub breaker: Breaker,
    /// Its version (for the conditional write).
    pub version: u64,
    /// When it was read or written.
    pub at: Timestamp,
}

impl CachedCircuit {
    /// The admission decided from the cached row at `now`, when the row is fresh enough and the
    /// decision changes nothing (closed: proceed; open or a probe in flight: defer). `None`:
    /// read the row (stale, or a probe is due, which only a conditional write may take).
    pub fn admit(&self, now: Timestamp, config: &BreakerConfig) -> Option<Admission> {
        let age = now.unix_millis() - self.at.unix_millis();
        if age < 0 || age >= millis(config.cache_ttl) {
            return None;
        }
        let mut copy = self.breaker.clone();
        match copy.admit(now, config) {
            (admission, false) => Some(admission),
            (_, true) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_800_000_000_000 + secs * 1000)
    }

    /// A breaker opened by five failures in the first five seconds (its cool-down ends at 64 s).
    fn opened(cfg: &BreakerConfig) -> Breaker {
        let mut b = Breaker::default();
        for i in 0..5 {
            b.record_failure(at(i), 1, cfg);
        }
        b
    }

    #[test]
    fn the_fifth_failure_in_the_window_opens_the_circuit_once() {
        let cfg = BreakerConfig::default();
        let mut b = Breaker::default();
        for i in 0..4 {
            assert!(
                !b.record_failure(at(i * 60), 1, &cfg),
                "opened at failure {}",
                i + 1
            );
        }
        assert!(b.record_failure(at(300), 1, &cfg));
        assert_eq!(b.state, CircuitState::Open);
        assert_eq!(b.times_opened, 1);
        assert!(
            !b.record_failure(at(301), 1, &cfg),
            "an open circuit does not open again"
        );
        assert_eq!(b.times_opened, 1);
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let cfg = BreakerConfig::default();
        let mut b = Breaker::default();
        for i in 0..4 {
            b.record_failure(at(i), 1, &cfg);
        }
        assert!(
            !b.record_failure(at(3601), 1, &cfg),
            "four of the five are more than an hour old"
        );
        assert_eq!(b.state, CircuitState::Closed);
    }

    #[test]
    fn open_defers_then_admits_exactly_one_probe_whose_success_closes() {
        let cfg = BreakerConfig::default();
        let mut b = opened(&cfg);
        assert_eq!(
            b.admit(at(10), &cfg),
            (Admission::DeferUntil(at(64)), false)
        );
        assert_eq!(b.admit(at(64), &cfg), (Admission::Probe, true));
        assert_eq!(b.state, CircuitState::HalfOpen);
        // A second invocation during the probe is deferred to the end of the probe's lease.
        assert_eq!(
            b.admit(at(65), &cfg),
            (Admission::DeferUntil(at(94)), false)
        );
        assert!(b.record_success());
        assert_eq!(b.state, CircuitState::Closed);
        assert_eq!(b.admit(at(66), &cfg), (Admission::Proceed, false));
        assert!(!b.record_success(), "success while closed writes nothing");
    }

    #[test]
    fn a_failed_probe_reopens_for_another_cool_down() {
        let cfg = BreakerConfig::default();
        let mut b = opened(&cfg);
        b.admit(at(70), &cfg);
        assert!(b.record_failure(at(71), 1, &cfg));
        assert_eq!(b.state, CircuitState::Open);
        assert_eq!(b.until, Some(at(131)));
        assert_eq!(b.times_opened, 2);
    }

    #[test]
    fn a_reset_by_hand_closes_an_open_circuit_and_records_who_and_when() {
        let cfg = BreakerConfig::default();
        let mut b = opened(&cfg);
        assert_eq!(b.failures_in_window(at(10), &cfg), 5);
        assert_eq!(b.next_probe_in_secs(at(10)), Some(54));
        b.reset(at(20), "ops-admin");
        assert_eq!(b.state, CircuitState::Closed);
        assert_eq!(b.reset_at, Some(at(20)));
        assert_eq!(b.reset_by.as_deref(), Some("ops-admin"));
        assert_eq!(b.failures_in_window(at(20), &cfg), 0);
        assert_eq!(b.next_probe_in_secs(at(20)), None);
        assert_eq!(b.admit(at(21), &cfg), (Admission::Proceed, false));
        assert_eq!(b.times_opened, 1, "the history of openings is kept");
    }

    #[test]
    fn failures_older_than_the_window_are_not_shown_as_in_it() {
        let cfg = BreakerConfig::default();
        let mut b = Breaker::default();
        b.record_failure(at(0), 1, &cfg);
        b.record_failure(at(100), 1, &cfg);
        assert_eq!(b.failures_in_window(at(3650), &cfg), 1);
    }

    #[test]
    fn background_failures_behind_many_attempts_never_open_the_circuit() {
        let cfg = BreakerConfig::default();
        let mut b = Breaker::default();
        // 100 failures in a minute, each behind 40 attempts of its process: a 2.5% error rate.
        for i in 0..100 {
            assert!(!b.record_failure(at(i), 40, &cfg), "opened at failure {i}");
        }
        assert_eq!(b.state, CircuitState::Closed);
        assert_eq!(
            b.failures_in_window(at(100), &cfg),
            5,
            "the count is still kept"
        );
    }

    #[test]
    fn failures_at_half_the_attempts_open_at_the_fifth_and_below_half_do_not() {
        let cfg = BreakerConfig::default();
        let mut half = Breaker::default();
        for i in 0..4 {
            assert!(!half.record_failure(at(i), 2, &cfg));
        }
        assert!(
            half.record_failure(at(4), 2, &cfg),
            "5 of 10 attempts failed"
        );
        let mut third = Breaker::default();
        for i in 0..20 {
            assert!(!third.record_failure(at(i), 3, &cfg), "5 of 15 attempts");
        }
    }

    #[test]
    fn an_outage_after_busy_traffic_opens_once_the_recent_failures_dominate() {
        let cfg = BreakerConfig::default();
        let mut b = Breaker::default();
        // Two processes report their busy minute with their first failure ...
        assert!(!b.record_failure(at(0), 200, &cfg));
        assert!(!b.record_failure(at(1), 150, &cfg));
        // ... then every attempt fails: the share counts the last five failures only.
        for i in 2..6 {
            assert!(
                !b.record_failure(at(i), 1, &cfg),
                "opened at failure {}",
                i + 1
            );
        }
        assert!(
            b.record_failure(at(6), 1, &cfg),
            "the last five are all failures"
        );
        assert_eq!(b.times_opened, 1);
    }

    #[test]
    fn a_row_stored_before_the_share_counts_each_failure_as_one_attempt() {
        let cfg = BreakerConfig::default();
        let old = serde_json::json!({"state": "closed", "failures": [
            1_800_000_000_000_i64, 1_800_000_001_000_i64, 1_800_000_002_000_i64, 1_800_000_003_000_i64
        ]});
        let mut b: Breaker = serde_json::from_value(old).unwrap_or_default();
        assert_eq!(b.failures.len(), 4);
        assert!(
            b.record_failure(at(4), 1, &cfg),
            "the old rule: the 5th failure opens"
        );
        assert_eq!(b.attempts, vec![1; 5]);
    }

    #[test]
    fn a_process_reports_its_attempts_in_the_rate_window_once() {
        let cfg = BreakerConfig::default();
        let mut w = AttemptWindow::default();
        assert_eq!(
            w.take_unreported(at(0), &cfg),
            1,
            "the failing attempt itself"
        );
        for i in 1..=30 {
            w.record(at(i), &cfg);
        }
        assert_eq!(w.take_unreported(at(30), &cfg), 30);
        w.record(at(31), &cfg);
        w.record(at(32), &cfg);
        assert_eq!(
            w.take_unreported(at(33), &cfg),
            2,
            "reported ones are not again"
        );
        for i in 40..50 {
            w.record(at(i), &cfg);
        }
        // At 101 s only the attempts after 41 s count: 42..=49 and 100.
        w.record(at(100), &cfg);
        assert_eq!(w.take_unreported(at(101), &cfg), 9);
        for i in 200..300 {
            w.record(at(i), &cfg);
        }
        assert_eq!(
            w.take_unreported(at(300), &cfg),
            59,
            "only the attempts of the last minute (241..=299)"
        );
    }

    #[test]
    fn a_fresh_cached_row_decides_alone_unless_a_probe_is_due_or_it_is_stale() {
        let cfg = BreakerConfig::default();
        let closed = CachedCircuit {
            breaker: Breaker::default(),
            version: 7,
            at: at(0),
        };
        assert_eq!(closed.admit(at(2), &cfg), Some(Admission::Proceed));
        assert_eq!(
            closed.admit(at(3), &cfg),
            None,
            "stale after the cache time"
        );
        assert_eq!(
            closed.admit(at(-1), &cfg),
            None,
            "read in the future: not trusted"
        );

        let open = CachedCircuit {
            breaker: opened(&cfg),
            version: 8,
            at: at(62),
        };
        assert_eq!(
            open.admit(at(63), &cfg),
            Some(Admission::DeferUntil(at(64)))
        );
        assert_eq!(
            open.admit(at(64), &cfg),
            None,
            "the probe is due: only a fresh read and a conditional write may take it"
        );
        let mut half = open.breaker.clone();
        assert_eq!(half.admit(at(64), &cfg).0, Admission::Probe);
        let probing = CachedCircuit {
            breaker: half,
            version: 9,
            at: at(64),
        };
        assert_eq!(
            probing.admit(at(65), &cfg),
            Some(Admission::DeferUntil(at(94))),
            "another process's probe is in flight"
        );
    }

    #[test]
    fn a_lost_probe_is_taken_over_after_its_lease() {
        let cfg = BreakerConfig::default();
        let mut b = opened(&cfg);
        assert_eq!(b.admit(at(64), &cfg).0, Admission::Probe);
        assert_eq!(
            b.admit(at(95), &cfg).0,
            Admission::Probe,
            "the first probe never reported back"
        );
    }
}
