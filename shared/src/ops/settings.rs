//! Tunables of the operations, read once at cold start from the environment.

use std::time::Duration;

use crate::breaker::BreakerConfig;
use crate::config::ConfigError;
use crate::domain::DEFAULT_ADMIN_SCOPE;

/// What the admin routes and the migration need beyond [`crate::Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsSettings {
    /// `THUMBNAILS_DLQ_URL`
    pub thumbnails_dlq_url: Option<String>,
    /// `VARIANTS_DLQ_URL`
    pub variants_dlq_url: Option<String>,
    /// The processors' breaker settings (`BREAKER_THRESHOLD`, `BREAKER_WINDOW_SECS`,
    /// `BREAKER_COOLDOWN_SECS`), to show failures within the same window.
    pub breaker: BreakerConfig,
    /// `RETRY_RATE_PER_SEC` (default 20): images retry-all-failed re-enqueues per second.
    pub retry_rate_per_sec: u32,
    /// `RETRY_CALL_BUDGET_SECS` (default 20): how long one retry-all-failed call works before it
    /// answers with a cursor (API Gateway gives an HTTP API integration 30 s).
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
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let number = |name: &'static str, default: u64, max: u64| -> Result<u64, ConfigError> {
            get(name).map_or(Ok(default), |v| {
                v.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or(ConfigError::Invalid {
                        name,
                        reason: format!("{v:?} is not a whole number between 1 and {max}"),
                    })
            })
        };
        let defaults = OpsSettings::default();
        let admin_scope = match get("ADMIN_SCOPE") {
            None => defaults.admin_scope.clone(),
            // One scope token (RFC 6749 section 3.3): printable ASCII without space, `"` or `\`.
            Some(v)
                if v.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') =>
            {
                v
            }
            Some(v) => {
                return Err(ConfigError::Invalid {
                    name: "ADMIN_SCOPE",
                    reason: format!(
                        "{v:?} is not one OAuth scope (no spaces, quotes or backslashes)"
                    ),
                })
            }
        };
        let secs = |name, default: Duration, max| {
            number(name, default.as_secs(), max).map(Duration::from_secs)
        };
        Ok(OpsSettings {
            thumbnails_dlq_url: get("THUMBNAILS_DLQ_URL"),
            variants_dlq_url: get("VARIANTS_DLQ_URL"),
            breaker: BreakerConfig {
                threshold: u32::try_from(number(
                    "BREAKER_THRESHOLD",
                    u64::from(defaults.breaker.threshold),
                    1_000_000,
                )?)
                .unwrap_or(u32::MAX),
                window: secs("BREAKER_WINDOW_SECS", defaults.breaker.window, 86_400 * 30)?,
                cooldown: secs("BREAKER_COOLDOWN_SECS", defaults.breaker.cooldown, 86_400)?,
                ..defaults.breaker
            },
            retry_rate_per_sec: u32::try_from(number(
                "RETRY_RATE_PER_SEC",
                u64::from(defaults.retry_rate_per_sec),
                1000,
            )?)
            .unwrap_or(1000),
            retry_call_budget: secs("RETRY_CALL_BUDGET_SECS", defaults.retry_call_budget, 25)?,
            admin_scope,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_a_bad_rate_is_named() {
        let s = OpsSettings::from_lookup(|_| None).unwrap();
        assert_eq!(s, OpsSettings::default());
        let err = OpsSettings::from_lookup(|k| (k == "RETRY_RATE_PER_SEC").then(|| "0".into()))
            .unwrap_err();
        assert!(err.to_string().contains("RETRY_RATE_PER_SEC"), "{err}");
        let err =
            OpsSettings::from_lookup(|k| (k == "RETRY_CALL_BUDGET_SECS").then(|| "60".into()))
                .unwrap_err();
        assert!(err.to_string().contains("between 1 and 25"), "{err}");
    }

    #[test]
    fn the_admin_scope_defaults_to_safelight_admin_and_must_be_one_scope() {
        assert_eq!(
            OpsSettings::from_lookup(|_| None).unwrap().admin_scope,
            "safelight/admin"
        );
        let named = OpsSettings::from_lookup(|k| (k == "ADMIN_SCOPE").then(|| "ops/admin".into()));
        assert_eq!(named.unwrap().admin_scope, "ops/admin");
        for bad in ["safelight/admin openid", "a\"b"] {
            let err =
                OpsSettings::from_lookup(|k| (k == "ADMIN_SCOPE").then(|| bad.into())).unwrap_err();
            assert!(err.to_string().contains("ADMIN_SCOPE"), "{err}");
        }
    }
}
