//! Circuit-breaker rules, pure. The state lives in `CONTROL_TABLE` (`circuit#{stage}`) and is
//! changed only by conditional writes on its `version`, so concurrent invocations lose no failure
//! and exactly one of them opens the circuit.
//!
//! Closed: work proceeds; transient failures are remembered for a rolling window. At
//! `threshold` failures within the window the circuit opens for `cooldown`. While open, work is
//! deferred (not failed). After the cool-down one invocation takes the half-open probe (a lease
//! for `probe_lease`); its success closes the circuit, its failure reopens it.

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
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            threshold: 5,
            window: Duration::from_secs(3600),
            cooldown: Duration::from_secs(60),
            probe_lease: Duration::from_secs(30),
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

    /// Records a transient failure. Returns whether the state changed (it always does: the
    /// failure is remembered) and whether this failure opened the circuit.
    pub fn record_failure(&mut self, now: Timestamp, config: &BreakerConfig) -> bool {
        let now_ms = now.unix_millis();
        let horizon = now_ms - millis(config.window);
        self.failures.retain(|t| *t > horizon);
        self.failures.push(now_ms);
        // Only the most recent `threshold` failures matter.
        let keep = config.threshold.max(1) as usize;
        if self.failures.len() > keep {
            self.failures.drain(..self.failures.len() - keep);
        }
        let reopen = self.state == CircuitState::HalfOpen;
        let trip = self.state == CircuitState::Closed && self.failures.len() >= keep;
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

    /// An operator closes the circuit by hand: failures are forgotten, work proceeds at once,
    /// and who did it when is kept on the row.
    pub fn reset(&mut self, now: Timestamp, by: &str) {
        self.state = CircuitState::Closed;
        self.failures.clear();
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
        self.until = None;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_800_000_000_000 + secs * 1000)
    }

    #[test]
    fn the_fifth_failure_in_the_window_opens_the_circuit_once() {
        let cfg = BreakerConfig::default();
        let mut b = Breaker::default();
        for i in 0..4 {
            assert!(
                !b.record_failure(at(i * 60), &cfg),
                "opened at failure {}",
                i + 1
            );
        }
        assert!(b.record_failure(at(300), &cfg));
        assert_eq!(b.state, CircuitState::Open);
        assert_eq!(b.times_opened, 1);
        assert!(
            !b.record_failure(at(301), &cfg),
            "an open circuit does not open again"
        );
        assert_eq!(b.times_opened, 1);
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let cfg = BreakerConfig::default();
        let mut b = Breaker::default();
        for i in 0..4 {
            b.record_failure(at(i), &cfg);
        }
        assert!(
            !b.record_failure(at(3601), &cfg),
            "four of the five are more than an hour old"
        );
        assert_eq!(b.state, CircuitState::Closed);
    }

    #[test]
    fn open_defers_then_admits_exactly_one_probe_whose_success_closes() {
        let cfg = BreakerConfig::default();
        let mut b = Breaker::default();
        for i in 0..5 {
            b.record_failure(at(i), &cfg);
        }
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
        let mut b = Breaker::default();
        for i in 0..5 {
            b.record_failure(at(i), &cfg);
        }
        b.admit(at(70), &cfg);
        assert!(b.record_failure(at(71), &cfg));
        assert_eq!(b.state, CircuitState::Open);
        assert_eq!(b.until, Some(at(131)));
        assert_eq!(b.times_opened, 2);
    }

    #[test]
    fn a_reset_by_hand_closes_an_open_circuit_and_records_who_and_when() {
        let cfg = BreakerConfig::default();
        let mut b = Breaker::default();
        for i in 0..5 {
            b.record_failure(at(i), &cfg);
        }
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
        b.record_failure(at(0), &cfg);
        b.record_failure(at(100), &cfg);
        assert_eq!(b.failures_in_window(at(3650), &cfg), 1);
    }

    #[test]
    fn a_lost_probe_is_taken_over_after_its_lease() {
        let cfg = BreakerConfig::default();
        let mut b = Breaker::default();
        for i in 0..5 {
            b.record_failure(at(i), &cfg);
        }
        assert_eq!(b.admit(at(64), &cfg).0, Admission::Probe);
        assert_eq!(
            b.admit(at(95), &cfg).0,
            Admission::Probe,
            "the first probe never reported back"
        );
    }
}
