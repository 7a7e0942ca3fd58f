//! `SAFELIGHT_FAULTS`, the fault injection of the local stack and the end-to-end tests:
//! `SAFELIGHT_FAULTS=s3_get:0.2,ddb_update:0.1` makes the named operations fail with a transient
//! error at that rate. Off unless set.
//!
//! Operation names (each the port calls that the adapter of that name makes; see [`operation`]):
//! `s3_get`, `s3_put`, `s3_head`, `s3_delete` (deleting an object or a version), `ddb_get`,
//! `ddb_put` (creating an image row, claiming a digest), `ddb_update`, `sqs_visibility`,
//! `apigw_post`, and `*` for all of them. An entry may be scoped to object keys containing a
//! text, `op@text:rate` (e.g. `s3_get@originals/t-flaky-:1` fails only the reads of that owner's
//! originals), so a suite can fault one test's images without touching the others.
//!
//! An entry ending in `:denied` (`s3_get@originals/t-x/:1:denied`) injects a refusal instead (an
//! access-denied answer: a permissions or configuration problem, not counted by the circuit
//! breaker and never deferred), where the port has a refusal to report (the object store and the
//! tables; the queue and the realtime ports report an outage).
//!
//! `abort@text:1` is a crash point, not an error: reading an original whose key contains `text`
//! aborts the whole process, as an out-of-memory kill or a segfault in a codec would.

use std::sync::Arc;

use super::{Call, InjectedFault, Injector, Port, MARKER};

/// A malformed `SAFELIGHT_FAULTS`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "SAFELIGHT_FAULTS entry {0:?} is not `operation[@key-text]:rate[:denied]` with 0 <= rate <= 1"
)]
pub struct FaultSpecError(pub String);

#[derive(Debug)]
struct Rule {
    op: String,
    scope: Option<String>,
    rate: f64,
    denied: bool,
}

impl Rule {
    fn applies(&self, op: &str, key: Option<&str>) -> bool {
        (self.op == op || (self.op == "*" && op != "abort"))
            && match (&self.scope, key) {
                (None, _) => true,
                (Some(scope), Some(key)) => key.contains(scope.as_str()),
                (Some(_), None) => false,
            }
    }
}

/// Parsed fault rates; cheap to clone. The default injects nothing.
#[derive(Debug, Clone, Default)]
pub struct Faults(Option<Arc<Vec<Rule>>>);

impl Faults {
    /// Parses a spec; `None` or empty means off.
    pub fn parse(spec: Option<&str>) -> Result<Self, FaultSpecError> {
        let Some(spec) = spec.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(Faults(None));
        };
        let mut rules = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || FaultSpecError(entry.to_owned());
            let (entry, denied) = match entry.strip_suffix(":denied") {
                Some(rest) => (rest, true),
                None => (entry, false),
            };
            let (target, rate) = entry.rsplit_once(':').ok_or_else(bad)?;
            let rate: f64 = rate.trim().parse().map_err(|_| bad())?;
            let (op, scope) = match target.split_once('@') {
                Some((op, scope)) if !scope.trim().is_empty() => {
                    (op.trim(), Some(scope.trim().to_owned()))
                }
                Some(_) => return Err(bad()),
                None => (target.trim(), None),
            };
            if !(0.0..=1.0).contains(&rate) || op.is_empty() {
                return Err(bad());
            }
            rules.push(Rule {
                op: op.to_owned(),
                scope,
                rate,
                denied,
            });
        }
        tracing::warn!(spec, build = MARKER, "fault injection is on");
        Ok(Faults(Some(Arc::new(rules))))
    }

    /// Whether any fault is configured.
    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// The first applying entry that fires: `Some(denied)`.
    fn fires(&self, op: &str, key: Option<&str>) -> Option<bool> {
        let rules = self.0.as_ref()?;
        rules
            .iter()
            .filter(|r| r.applies(op, key))
            .find(|r| r.rate > 0.0 && rand::random::<f64>() < r.rate)
            .map(|r| r.denied)
    }

    /// Fails `op` at its configured rate (unscoped entries only).
    pub fn check(&self, op: &str) -> Result<(), InjectedFault> {
        self.check_key(op, None)
    }

    /// Fails `op` on the object `key` at the rate of the entries that apply to it.
    pub fn check_key(&self, op: &str, key: Option<&str>) -> Result<(), InjectedFault> {
        match self.fires(op, key) {
            Some(true) => {
                tracing::warn!(operation = op, "injecting a refusal");
                Err(InjectedFault {
                    message: format!("injected access denied in {op}"),
                    refused: true,
                })
            }
            Some(false) => {
                tracing::warn!(operation = op, "injecting a transient fault");
                Err(InjectedFault {
                    message: format!("injected fault in {op}"),
                    refused: false,
                })
            }
            None => Ok(()),
        }
    }

    /// The crash point: aborts the process when an `abort` entry applies to `key`.
    pub fn crash_point(&self, key: &str) {
        if self.fires("abort", Some(key)).is_some() {
            tracing::error!(key, "injected crash: aborting the process");
            std::process::abort();
        }
    }
}

/// The `SAFELIGHT_FAULTS` operation a port call is, and whether entries scoped to an object key
/// apply to it; `None` for the calls no operation names (they are never faulted).
pub fn operation(call: &Call<'_>) -> Option<(&'static str, bool)> {
    let op = match (call.port, call.method) {
        (Port::ObjectStore, "get") => ("s3_get", true),
        (Port::ObjectStore, "put") => ("s3_put", true),
        (Port::ObjectStore, "head") => ("s3_head", true),
        (Port::ObjectStore, "delete" | "delete_version") => ("s3_delete", true),
        // The backfill's sniff of an original's first bytes: unscoped entries only.
        (Port::OriginalsSource, "head_bytes") => ("s3_get", false),
        (Port::ImageRepository, "create") | (Port::DigestIndex, "claim" | "reclaim") => {
            ("ddb_put", false)
        }
        (Port::ImageRepository, "get")
        | (Port::AwaitingUploads, "awaiting_since")
        | (Port::ControlStore, "load_breaker")
        | (Port::DigestIndex, "claim_read")
        | (Port::ConnectionRepository, "get" | "for_owner")
        | (Port::NoticeLog, "since") => ("ddb_get", false),
        (Port::ImageRepository, "update" | "update_or_current")
        | (Port::RateCounter, "take")
        | (Port::ConnectionRepository, "put")
        | (Port::NoticeLog, "next_seq" | "claim" | "record_progress" | "append") => {
            ("ddb_update", false)
        }
        (Port::JobQueue, "delay") => ("sqs_visibility", false),
        (Port::ConnectionPoster, "post") => ("apigw_post", false),
        _ => return None,
    };
    Some(op)
}

impl Injector for Faults {
    async fn enter(&self, call: Call<'_>) -> Result<(), InjectedFault> {
        if !self.enabled() {
            return Ok(());
        }
        let Some((op, scoped)) = operation(&call) else {
            return Ok(());
        };
        let key = call.key.filter(|_| scoped);
        if let (Some(key), (Port::ObjectStore, "get")) = (key, (call.port, call.method)) {
            self.crash_point(key);
        }
        self.check_key(op, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_off_unless_configured() {
        let off = Faults::parse(None).unwrap();
        assert!(!off.enabled());
        assert!((0..1000).all(|_| off.check("s3_get").is_ok()));
        assert!(!Faults::parse(Some("  ")).unwrap().enabled());
    }

    #[test]
    fn a_rate_of_one_always_fails_and_other_operations_pass() {
        let f = Faults::parse(Some("s3_get:1, ddb_update:0")).unwrap();
        assert!(f.check("s3_get").is_err());
        assert!(f.check("s3_put").is_ok());
        assert!(f.check("ddb_update").is_ok());
        let all = Faults::parse(Some("*:1")).unwrap();
        assert!(all.check("anything").is_err());
    }

    #[test]
    fn a_rate_of_a_fifth_fails_about_a_fifth_of_the_time() {
        let f = Faults::parse(Some("s3_get:0.2")).unwrap();
        let failures = (0..10_000).filter(|_| f.check("s3_get").is_err()).count();
        assert!((1500..2500).contains(&failures), "{failures}");
    }

    #[test]
    fn a_scoped_fault_fails_only_the_keys_that_contain_its_text() {
        let f = Faults::parse(Some("s3_get@originals/t-flaky-:1")).unwrap();
        assert!(f
            .check_key("s3_get", Some("originals/t-flaky-1/01J"))
            .is_err());
        assert!(f.check_key("s3_get", Some("originals/t-calm/01J")).is_ok());
        assert!(f.check("s3_get").is_ok(), "no key, no scoped fault");
        // `*` never means "crash": an abort must be asked for by name.
        let all = Faults::parse(Some("*:1")).unwrap();
        all.crash_point("originals/u/01J");
    }

    #[test]
    fn a_denied_entry_injects_a_refusal() {
        let f = Faults::parse(Some("s3_get@originals/t-x/:1:denied, s3_put:1")).unwrap();
        let e = f
            .check_key("s3_get", Some("originals/t-x/01J"))
            .unwrap_err();
        assert!(e.refused, "{e}");
        assert_eq!(e.to_string(), "injected access denied in s3_get");
        assert!(!f.check("s3_put").unwrap_err().refused);
    }

    #[test]
    fn malformed_specs_are_refused() {
        for bad in [
            "s3_get",
            "s3_get:2",
            "s3_get:x",
            ":0.5",
            "s3_get@:1",
            "s3_get:denied",
        ] {
            assert!(Faults::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
