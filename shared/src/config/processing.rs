//! [`ProcessingConfig`]: what the `thumbnail` and `variant` functions render and with which
//! limits, backoff, lease and breaker; [`BreakerSettings`], which the admin function reads too.

use std::time::Duration;

use serde::Deserialize;

use super::{secs, Bounds, ConfigError, Env, Settings};
use crate::breaker::BreakerConfig;
use crate::domain::Stage;
use crate::engine;
use crate::retry::Backoff;

const BREAKER_THRESHOLD: Bounds = Bounds::new("BREAKER_THRESHOLD", 1, 1_000_000);
const BREAKER_WINDOW_SECS: Bounds = Bounds::new("BREAKER_WINDOW_SECS", 1, 30 * 86_400);
const BREAKER_COOLDOWN_SECS: Bounds = Bounds::new("BREAKER_COOLDOWN_SECS", 1, 86_400);
const MAX_PIXELS: Bounds = Bounds::new("MAX_PIXELS", 1, u64::MAX);
const MAX_SIDE: Bounds = Bounds::new("MAX_SIDE", 1, u32::MAX as u64);
const MEMORY_MB: Bounds = Bounds::new("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 1, u64::MAX);
const BACKOFF_BASE_SECS: Bounds = Bounds::new("BACKOFF_BASE_SECS", 1, u64::MAX);
const BACKOFF_CAP_SECS: Bounds = Bounds::new("BACKOFF_CAP_SECS", 1, u64::MAX);
const LEASE_SECS: Bounds = Bounds::new("LEASE_SECS", 1, u64::MAX);

/// The circuit breaker's settings the template sets on the processors and on the admin
/// function (which shows failures within the same window). The rest of [`BreakerConfig`] keeps
/// its defaults: in particular the half-open probe's lease is the processors' 30 s timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct BreakerSettings {
    /// `BREAKER_THRESHOLD` (default 5).
    pub breaker_threshold: u32,
    /// `BREAKER_WINDOW_SECS` (default 3600).
    #[serde(rename = "breaker_window_secs", deserialize_with = "secs")]
    pub window: Duration,
    /// `BREAKER_COOLDOWN_SECS` (default 60).
    #[serde(rename = "breaker_cooldown_secs", deserialize_with = "secs")]
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        let d = BreakerConfig::default();
        BreakerSettings {
            breaker_threshold: d.threshold,
            window: d.window,
            cooldown: d.cooldown,
        }
    }
}

impl Settings for BreakerSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        BREAKER_THRESHOLD.check(self.breaker_threshold)?;
        BREAKER_WINDOW_SECS.check_secs(self.window)?;
        BREAKER_COOLDOWN_SECS.check_secs(self.cooldown)
    }
}

impl From<BreakerSettings> for BreakerConfig {
    fn from(s: BreakerSettings) -> Self {
        BreakerConfig {
            threshold: s.breaker_threshold,
            window: s.window,
            cooldown: s.cooldown,
            ..BreakerConfig::default()
        }
    }
}

/// The processing variables besides the breaker's.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct ProcessingVars {
    thumbnail_specs: Option<String>,
    variant_specs: Option<String>,
    max_pixels: u64,
    max_side: u32,
    /// Set by the Lambda runtime from the function's MemorySize (the emulator sets it too).
    aws_lambda_function_memory_size: u64,
    #[serde(deserialize_with = "secs")]
    backoff_base_secs: Duration,
    #[serde(deserialize_with = "secs")]
    backoff_cap_secs: Duration,
    #[serde(deserialize_with = "secs")]
    lease_secs: Duration,
}

impl Default for ProcessingVars {
    fn default() -> Self {
        let limits = engine::Limits::for_memory_mb(engine::DEFAULT_MEMORY_MB);
        let backoff = Backoff::default();
        ProcessingVars {
            thumbnail_specs: None,
            variant_specs: None,
            max_pixels: limits.max_pixels,
            max_side: limits.max_side,
            aws_lambda_function_memory_size: engine::DEFAULT_MEMORY_MB,
            backoff_base_secs: backoff.base,
            backoff_cap_secs: backoff.cap,
            lease_secs: Duration::from_secs(60),
        }
    }
}

impl Settings for ProcessingVars {
    fn validate(&self) -> Result<(), ConfigError> {
        MAX_PIXELS.check(self.max_pixels)?;
        MAX_SIDE.check(self.max_side)?;
        MEMORY_MB.check(self.aws_lambda_function_memory_size)?;
        BACKOFF_BASE_SECS.check_secs(self.backoff_base_secs)?;
        BACKOFF_CAP_SECS.check_secs(self.backoff_cap_secs)?;
        LEASE_SECS.check_secs(self.lease_secs)
    }
}

/// The processing functions' settings: what to render, input limits, backoff, lease and
/// breaker. The wiring builds the pipeline's `processing::Policy` from them.
#[derive(Debug, Clone)]
pub struct ProcessingConfig {
    /// `THUMBNAIL_SPECS` / `VARIANT_SPECS` (engine spec syntax), else the defaults.
    pub specs: Vec<engine::Spec>,
    /// `MAX_PIXELS` (default 100 MP), `MAX_SIDE` (default 16384 px), and the decode budget: half of
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (MB, set by the Lambda runtime; 1024 when absent).
    pub limits: engine::Limits,
    /// `BACKOFF_BASE_SECS` (2), `BACKOFF_CAP_SECS` (300).
    pub backoff: Backoff,
    /// `LEASE_SECS` (60): how long a worker holds the (stage, image) lease.
    pub lease: Duration,
    /// `BREAKER_THRESHOLD` (5), `BREAKER_WINDOW_SECS` (3600), `BREAKER_COOLDOWN_SECS` (60).
    pub breaker: BreakerConfig,
}

impl ProcessingConfig {
    /// Reads the process environment for `stage`.
    pub fn from_env(stage: Stage) -> Result<Self, ConfigError> {
        Self::read(stage, &Env::process())
    }

    /// Reads `env` for `stage`.
    pub fn read(stage: Stage, env: &Env) -> Result<Self, ConfigError> {
        let vars: ProcessingVars = env.read()?;
        let (name, specs, defaults) = match stage {
            Stage::Thumbnail => (
                "THUMBNAIL_SPECS",
                vars.thumbnail_specs,
                engine::default_thumbnail_specs(),
            ),
            Stage::Variant => (
                "VARIANT_SPECS",
                vars.variant_specs,
                engine::default_variant_specs(),
            ),
        };
        let specs = match specs {
            None => defaults,
            Some(v) => engine::parse_specs(&v).map_err(|e| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            })?,
        };
        Ok(ProcessingConfig {
            specs,
            limits: engine::Limits {
                max_pixels: vars.max_pixels,
                max_side: vars.max_side,
                ..engine::Limits::for_memory_mb(vars.aws_lambda_function_memory_size)
            },
            backoff: Backoff {
                base: vars.backoff_base_secs,
                cap: vars.backoff_cap_secs,
            },
            lease: vars.lease_secs,
            breaker: env.read::<BreakerSettings>()?.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(stage: Stage, pairs: &[(&str, &str)]) -> Result<ProcessingConfig, ConfigError> {
        ProcessingConfig::read(stage, &Env::from_vars(pairs.iter().copied()))
    }

    #[test]
    fn processing_defaults_follow_the_design_and_bad_specs_are_named() {
        let c = read(Stage::Thumbnail, &[]).unwrap();
        let edges: Vec<u32> = c.specs.iter().map(|s| s.max_edge).collect();
        assert_eq!(edges, vec![150, 300, 600]);
        assert_eq!(c.breaker.threshold, 5);
        assert_eq!(c.breaker.window, Duration::from_secs(3600));
        assert_eq!(c.breaker.cooldown, Duration::from_secs(60));
        assert_eq!(c.breaker.probe_lease, Duration::from_secs(30));
        assert_eq!(c.backoff, Backoff::default());
        assert_eq!(c.lease, Duration::from_secs(60));
        assert_eq!(c.limits.max_pixels, 100_000_000);
        assert_eq!(c.limits.max_side, 16_384);
        assert_eq!(c.limits.max_decode_bytes, 512 << 20);
        let small = read(
            Stage::Thumbnail,
            &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")],
        )
        .unwrap();
        assert_eq!(
            small.limits.max_decode_bytes,
            128 << 20,
            "half the function's memory"
        );
        let v = read(Stage::Variant, &[]).unwrap();
        assert_eq!(v.specs.len(), 4);
        let err = read(Stage::Variant, &[("VARIANT_SPECS", "huge:gif")]).unwrap_err();
        assert!(err.to_string().contains("VARIANT_SPECS"), "{err}");
        let only_thumbnails = read(Stage::Variant, &[("THUMBNAIL_SPECS", "huge:gif")]);
        assert!(only_thumbnails.is_ok(), "a stage reads its own specs only");
    }

    #[test]
    fn breaker_defaults_and_bounds_agree_with_the_template() {
        let b = read(Stage::Thumbnail, &[]).unwrap().breaker;
        for (bounds, default) in [
            (BREAKER_THRESHOLD, u64::from(b.threshold)),
            (BREAKER_WINDOW_SECS, b.window.as_secs()),
            (BREAKER_COOLDOWN_SECS, b.cooldown.as_secs()),
        ] {
            super::super::template::agrees(bounds, default);
        }
    }

    #[test]
    fn the_breaker_is_read_with_one_set_of_bounds_and_a_bad_value_is_named() {
        let c = read(
            Stage::Thumbnail,
            &[
                ("BREAKER_THRESHOLD", "1000"),
                ("BREAKER_WINDOW_SECS", "60"),
                ("BREAKER_COOLDOWN_SECS", "5"),
            ],
        )
        .unwrap();
        assert_eq!(c.breaker.threshold, 1000);
        assert_eq!(c.breaker.window, Duration::from_secs(60));
        assert_eq!(c.breaker.cooldown, Duration::from_secs(5));
        for (name, value) in [
            ("BREAKER_THRESHOLD", "0"),
            ("BREAKER_THRESHOLD", "1000001"),
            ("BREAKER_WINDOW_SECS", "2592001"),
            ("BREAKER_COOLDOWN_SECS", "86401"),
            ("BREAKER_COOLDOWN_SECS", "soon"),
            ("LEASE_SECS", "0"),
            ("MAX_SIDE", "0"),
            ("BACKOFF_CAP_SECS", "0"),
        ] {
            let err = read(Stage::Thumbnail, &[(name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={value}: {err}");
        }
    }
}
