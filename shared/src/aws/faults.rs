//! Fault injection for tests and the local stack: `SAFELIGHT_FAULTS=s3_get:0.2,ddb_update:0.1`
//! makes the named adapter operations fail with a transient error at that rate. Off unless set.
//!
//! Operation names: `s3_get`, `s3_put`, `s3_head`, `ddb_get`, `ddb_update`, `sqs_visibility`,
//! `apigw_post`, and `*` for all of them.

use std::collections::HashMap;
use std::sync::Arc;

/// An injected failure; adapters report it as their "unavailable" error, so it is transient.
#[derive(Debug, Clone, thiserror::Error)]
#[error("injected fault in {0}")]
pub struct InjectedFault(pub String);

/// A malformed `SAFELIGHT_FAULTS`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SAFELIGHT_FAULTS entry {0:?} is not `operation:rate` with 0 <= rate <= 1")]
pub struct FaultSpecError(pub String);

/// Parsed fault rates; cheap to clone. The default injects nothing.
#[derive(Debug, Clone, Default)]
pub struct Faults(Option<Arc<HashMap<String, f64>>>);

impl Faults {
    /// Parses a spec; `None` or empty means off.
    pub fn parse(spec: Option<&str>) -> Result<Self, FaultSpecError> {
        let Some(spec) = spec.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(Faults(None));
        };
        let mut rates = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || FaultSpecError(entry.to_owned());
            let (op, rate) = entry.split_once(':').ok_or_else(bad)?;
            let rate: f64 = rate.trim().parse().map_err(|_| bad())?;
            if !(0.0..=1.0).contains(&rate) || op.trim().is_empty() {
                return Err(bad());
            }
            rates.insert(op.trim().to_owned(), rate);
        }
        Ok(Faults(Some(Arc::new(rates))))
    }

    /// Whether any fault is configured.
    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Fails `op` at its configured rate.
    pub fn check(&self, op: &str) -> Result<(), InjectedFault> {
        let Some(rates) = &self.0 else { return Ok(()) };
        let rate = rates
            .get(op)
            .or_else(|| rates.get("*"))
            .copied()
            .unwrap_or(0.0);
        if rate > 0.0 && rand::random::<f64>() < rate {
            tracing::warn!(operation = op, "injecting a transient fault");
            return Err(InjectedFault(op.to_owned()));
        }
        Ok(())
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
    fn malformed_specs_are_refused() {
        for bad in ["s3_get", "s3_get:2", "s3_get:x", ":0.5"] {
            assert!(Faults::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
