//! Tunables of the operations, read once at cold start from the environment (see
//! [`crate::config`]).

use std::time::Duration;

use serde::Deserialize;

use crate::breaker::BreakerConfig;
use crate::config::{secs, Bounds, BreakerSettings, ConfigError, Env};
use crate::domain::DEFAULT_ADMIN_SCOPE;

const RETRY_RATE_PER_SEC: Bounds = Bounds::new("RETRY_RATE_PER_SEC", 1, 1000);
const RETRY_CALL_BUDGET_SECS: Bounds = Bounds::new("RETRY_CALL_BUDGET_SECS", 1, 25)
    .because("API Gateway gives an HTTP API integration 30 s");

/// What the admin routes and the migration need beyond [`crate::Config`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct OpsSettings {
    /// `THUMBNAILS_DLQ_URL`
    pub thumbnails_dlq_url: Option<String>,
    /// `VARIANTS_DLQ_URL`
    pub variants_dlq_url: Option<String>,
    /// The processors' breaker settings ([`BreakerSettings`]: `BREAKER_THRESHOLD`,
    /// `BREAKER_WINDOW_SECS`, `BREAKER_COOLDOWN_SECS`), to show failures within the same window.
    #[serde(skip)]
    pub breaker: BreakerConfig,
    /// `RETRY_RATE_PER_SEC` (default 20): images retry-all-failed re-enqueues per second.
    pub retry_rate_per_sec: u32,
    /// `RETRY_CALL_BUDGET_SECS` (default 20): how long one retry-all-failed call works before it
    /// answers with a cursor (API Gateway gives an HTTP API integration 30 s).
    #[serde(rename = "retry_call_budget_secs", deserialize_with = "secs")]
    pub retry_call_budget: Duration,
    /// `ADMIN_SCOPE` (default [`DEFAULT_ADMIN_SCOPE`]): the OAuth scope a token needs for the
    /// admin routes; the same value the template puts in their `AuthorizationScopes`.
    pub admin_scope: String,
}

impl Default for OpsSettings {
    fn default() -> Self {
        OpsSettings {
            thumbnails_dlq_url: None,
            variants_dlq_url: None,
            breaker: BreakerConfig::default(),
            retry_rate_per_sec: 20,
            retry_call_budget: Duration::from_secs(20),
            admin_scope: DEFAULT_ADMIN_SCOPE.to_owned(),
        }
    }
}

impl OpsSettings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    /// Reads `env`, checking each setting's bounds.
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let settings = OpsSettings {
            breaker: env.read::<BreakerSettings>()?.into(),
            ..env.parse()?
        };
        RETRY_RATE_PER_SEC.check(settings.retry_rate_per_sec)?;
        RETRY_CALL_BUDGET_SECS.check_secs(settings.retry_call_budget)?;
        // One scope token (RFC 6749 section 3.3): printable ASCII without space, `"` or `\`.
        let scope = &settings.admin_scope;
        if !scope
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            return Err(ConfigError::Invalid {
                name: "ADMIN_SCOPE",
                reason: format!(
                    "{scope:?} is not one OAuth scope (no spaces, quotes or backslashes)"
                ),
            });
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, value: &str) -> Result<OpsSettings, ConfigError> {
        OpsSettings::read(&Env::from_vars([(name, value)]))
    }

    #[test]
    fn defaults_apply_and_a_bad_rate_is_named() {
        let s = OpsSettings::read(&Env::default()).unwrap();
        assert_eq!(s, OpsSettings::default());
        let err = read("RETRY_RATE_PER_SEC", "0").unwrap_err();
        assert!(err.to_string().contains("RETRY_RATE_PER_SEC"), "{err}");
        let err = read("RETRY_CALL_BUDGET_SECS", "60").unwrap_err();
        assert!(err.to_string().contains("between 1 and 25"), "{err}");
    }

    #[test]
    fn the_retry_rate_agrees_with_the_template() {
        let s = OpsSettings::default();
        crate::config::template::agrees(RETRY_RATE_PER_SEC, s.retry_rate_per_sec);
    }

    #[test]
    fn the_breaker_is_the_processors_with_the_same_bounds() {
        assert_eq!(read("BREAKER_THRESHOLD", "7").unwrap().breaker.threshold, 7);
        let err = read("BREAKER_THRESHOLD", "0").unwrap_err();
        assert!(err.to_string().contains("BREAKER_THRESHOLD"), "{err}");
    }

    #[test]
    fn the_admin_scope_defaults_to_safelight_admin_and_must_be_one_scope() {
        assert_eq!(
            OpsSettings::read(&Env::default()).unwrap().admin_scope,
            "safelight/admin"
        );
        assert_eq!(
            read("ADMIN_SCOPE", "ops/admin").unwrap().admin_scope,
            "ops/admin"
        );
        for bad in ["safelight/admin openid", "a\"b"] {
            let err = read("ADMIN_SCOPE", bad).unwrap_err();
            assert!(err.to_string().contains("ADMIN_SCOPE"), "{err}");
        }
    }
}
