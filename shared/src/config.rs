//! Typed configuration, read once at cold start from SCREAMING_SNAKE environment variables.
//! A missing or malformed variable fails the init with a message naming it.

use std::time::Duration;

/// A configuration problem, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// The largest body the direct-upload fast path takes. API Gateway hands binary bodies to
/// Lambda base64-encoded, and a synchronous Lambda payload is at most 6 MB: 4 MiB of image is
/// 5.6 MB encoded, leaving room for headers. (A 5 MiB limit would be ~7 MB encoded and be
/// refused by the platform before our handler could answer with a clear error.)
pub const MAX_DIRECT_UPLOAD_BYTES: u64 = 4 * 1024 * 1024;

/// The longest a presigned upload may stay valid.
pub const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(15 * 60);

/// Everything the functions read from their environment. Resources a function does not use are
/// optional here; the function asks for them with [`Config::require`] at init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `BUCKET`
    pub bucket: String,
    /// `IMAGES_TABLE`
    pub images_table: String,
    /// `CONTROL_TABLE`
    pub control_table: Option<String>,
    /// `CONNECTIONS_TABLE`
    pub connections_table: Option<String>,
    /// `NOTICES_TABLE`
    pub notices_table: Option<String>,
    /// `THUMBNAILS_QUEUE_URL`
    pub thumbnails_queue_url: Option<String>,
    /// `VARIANTS_QUEUE_URL`
    pub variants_queue_url: Option<String>,
    /// `WEBSOCKET_ENDPOINT`
    pub websocket_endpoint: Option<String>,
    /// `JWT_ISSUER`: the OpenID issuer whose tokens `$connect` accepts.
    pub jwt_issuer: Option<String>,
    /// `JWT_AUDIENCE`: the `aud` (or `client_id`) those tokens must carry.
    pub jwt_audience: Option<String>,
    /// `MAX_UPLOAD_BYTES`: the largest original a presigned upload allows (default 25 MiB).
    pub max_upload_bytes: u64,
    /// `PRESIGN_EXPIRES_SECS`: validity of presigned uploads (default and maximum 900 s).
    pub presign_expires: Duration,
    /// `SAFELIGHT_FAULTS`: fault injection spec, off unless set (see `faults`).
    pub faults: Option<String>,
    /// `LINK_WINDOW_SECS`: download links stay the same this long and live twice as long
    /// (default 3600; 10 s to 3 days, see [`crate::domain::link`]).
    pub link_window: Duration,
    /// The CDN download links are signed for, when deliveries go through CloudFront (all three
    /// of `DELIVERY_DOMAIN`, `DELIVERY_KEY_PAIR_ID`, `DELIVERY_PRIVATE_KEY_SECRET_ARN`, else S3
    /// presigned GETs).
    pub delivery: Option<CdnDelivery>,
    /// `UPLOADS_PER_MINUTE`, `MAX_AWAITING_UPLOADS`, `MAX_CONNECTIONS_PER_OWNER`,
    /// `RESUME_PAGE_SIZE`: the per-owner limits (defaults and bounds in
    /// [`crate::limits::OwnerLimits`]).
    pub owner_limits: crate::limits::OwnerLimits,
}

/// The CloudFront distribution download links point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdnDelivery {
    /// `DELIVERY_DOMAIN`: the distribution's domain name.
    pub domain: String,
    /// `DELIVERY_KEY_PAIR_ID`: the CloudFront public key's id.
    pub key_pair_id: String,
    /// `DELIVERY_PRIVATE_KEY_SECRET_ARN`: the Secrets Manager secret holding the private key.
    pub private_key_secret_arn: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            get(name).map_or(Ok(default), |v| {
                v.trim().parse().map_err(|_| ConfigError::Invalid {
                    name,
                    reason: format!("{v:?} is not a whole number"),
                })
            })
        };
        let max_upload_bytes = number("MAX_UPLOAD_BYTES", 25 * 1024 * 1024)?;
        if max_upload_bytes == 0 || max_upload_bytes > 5 * 1024 * 1024 * 1024 {
            return Err(ConfigError::Invalid {
                name: "MAX_UPLOAD_BYTES",
                reason: "must be between 1 byte and 5 GiB (S3's single PUT limit)".into(),
            });
        }
        let presign_secs = number("PRESIGN_EXPIRES_SECS", MAX_PRESIGN_EXPIRY.as_secs())?;
        if presign_secs == 0 || presign_secs > MAX_PRESIGN_EXPIRY.as_secs() {
            return Err(ConfigError::Invalid {
                name: "PRESIGN_EXPIRES_SECS",
                reason: "must be between 1 and 900 seconds".into(),
            });
        }
        let window_secs = number("LINK_WINDOW_SECS", 3600)?;
        let window = Duration::from_secs(window_secs);
        if window < crate::domain::link::MIN_WINDOW || window > crate::domain::link::MAX_WINDOW {
            return Err(ConfigError::Invalid {
                name: "LINK_WINDOW_SECS",
                reason: "must be between 10 seconds and 3 days (a link lives two windows, a SigV4 URL at most 7 days)".into(),
            });
        }
        let delivery = match (
            get("DELIVERY_DOMAIN"),
            get("DELIVERY_KEY_PAIR_ID"),
            get("DELIVERY_PRIVATE_KEY_SECRET_ARN"),
        ) {
            (Some(domain), Some(key_pair_id), Some(private_key_secret_arn)) => Some(CdnDelivery {
                domain,
                key_pair_id,
                private_key_secret_arn,
            }),
            (None, None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    name: "DELIVERY_DOMAIN",
                    reason: "DELIVERY_DOMAIN, DELIVERY_KEY_PAIR_ID and DELIVERY_PRIVATE_KEY_SECRET_ARN go together (all set: CloudFront; none: S3 presigned GETs)".into(),
                })
            }
        };
        let limit = |b: crate::limits::Bounds, default: u32| -> Result<u32, ConfigError> {
            let v = number(b.name, u64::from(default))?;
            u32::try_from(v)
                .ok()
                .filter(|v| (b.min..=b.max).contains(v))
                .ok_or_else(|| ConfigError::Invalid {
                    name: b.name,
                    reason: format!("must be between {} and {}", b.min, b.max),
                })
        };
        let defaults = crate::limits::OwnerLimits::default();
        let [rate, awaiting, sockets, page] = crate::limits::OwnerLimits::BOUNDS;
        let owner_limits = crate::limits::OwnerLimits {
            uploads_per_minute: limit(rate, defaults.uploads_per_minute)?,
            max_awaiting_uploads: limit(awaiting, defaults.max_awaiting_uploads)?,
            max_connections: limit(sockets, defaults.max_connections)?,
            resume_page: limit(page, defaults.resume_page)?,
        };
        Ok(Config {
            bucket: required("BUCKET")?,
            images_table: required("IMAGES_TABLE")?,
            control_table: get("CONTROL_TABLE"),
            connections_table: get("CONNECTIONS_TABLE"),
            notices_table: get("NOTICES_TABLE"),
            thumbnails_queue_url: get("THUMBNAILS_QUEUE_URL"),
            variants_queue_url: get("VARIANTS_QUEUE_URL"),
            websocket_endpoint: get("WEBSOCKET_ENDPOINT"),
            jwt_issuer: get("JWT_ISSUER"),
            jwt_audience: get("JWT_AUDIENCE"),
            max_upload_bytes,
            presign_expires: Duration::from_secs(presign_secs),
            faults: get("SAFELIGHT_FAULTS"),
            link_window: window,
            delivery,
            owner_limits,
        })
    }

    /// An optional resource this function cannot run without.
    pub fn require<'a>(
        value: &'a Option<String>,
        name: &'static str,
    ) -> Result<&'a str, ConfigError> {
        value.as_deref().ok_or(ConfigError::Missing(name))
    }
}

/// The processing functions' settings: what to render, input limits, backoff and breaker.
#[derive(Debug, Clone)]
pub struct ProcessingConfig {
    /// `THUMBNAIL_SPECS` / `VARIANT_SPECS` (engine spec syntax), else the defaults.
    pub specs: Vec<crate::engine::Spec>,
    /// `MAX_PIXELS` (default 100 MP), `MAX_SIDE` (default 16384 px), and the decode budget: half of
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (MB, set by the Lambda runtime; 1024 when absent).
    pub limits: crate::engine::Limits,
    /// `BACKOFF_BASE_SECS` (2), `BACKOFF_CAP_SECS` (300), `BREAKER_THRESHOLD` (5),
    /// `BREAKER_WINDOW_SECS` (3600), `BREAKER_COOLDOWN_SECS` (60), `LEASE_SECS` (60).
    pub policy: crate::processing::Policy,
}

impl ProcessingConfig {
    /// Reads the process environment for `stage`.
    pub fn from_env(stage: crate::domain::Stage) -> Result<Self, ConfigError> {
        Self::from_lookup(stage, |name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`.
    pub fn from_lookup(
        stage: crate::domain::Stage,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        use crate::domain::Stage;
        use crate::engine;
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            get(name).map_or(Ok(default), |v| {
                v.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(ConfigError::Invalid {
                        name,
                        reason: format!("{v:?} is not a positive whole number"),
                    })
            })
        };
        let (specs_var, defaults) = match stage {
            Stage::Thumbnail => ("THUMBNAIL_SPECS", engine::default_thumbnail_specs()),
            Stage::Variant => ("VARIANT_SPECS", engine::default_variant_specs()),
        };
        let specs = match get(specs_var) {
            None => defaults,
            Some(v) => engine::parse_specs(&v).map_err(|e| ConfigError::Invalid {
                name: specs_var,
                reason: e.to_string(),
            })?,
        };
        let secs = |name, default| number(name, default).map(Duration::from_secs);
        let policy = crate::processing::Policy {
            backoff: crate::retry::Backoff {
                base: secs("BACKOFF_BASE_SECS", 2)?,
                cap: secs("BACKOFF_CAP_SECS", 300)?,
            },
            breaker: crate::breaker::BreakerConfig {
                threshold: u32::try_from(number("BREAKER_THRESHOLD", 5)?).unwrap_or(u32::MAX),
                window: secs("BREAKER_WINDOW_SECS", 3600)?,
                cooldown: secs("BREAKER_COOLDOWN_SECS", 60)?,
                probe_lease: secs("LEASE_SECS", 60)?,
                ..crate::breaker::BreakerConfig::default()
            },
            lease: secs("LEASE_SECS", 60)?,
            ..crate::processing::Policy::default()
        };
        // Set by the Lambda runtime from the function's MemorySize (the emulator sets it too).
        let memory_mb = number("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", engine::DEFAULT_MEMORY_MB)?;
        let limits = engine::Limits {
            max_pixels: number("MAX_PIXELS", 100_000_000)?,
            max_side: u32::try_from(number("MAX_SIDE", 16_384)?).unwrap_or(u32::MAX),
            ..engine::Limits::for_memory_mb(memory_mb)
        };
        Ok(ProcessingConfig {
            specs,
            limits,
            policy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_and_a_missing_bucket_is_named() {
        assert_eq!(
            from(&[("IMAGES_TABLE", "t")]),
            Err(ConfigError::Missing("BUCKET"))
        );
        let c = from(&[("BUCKET", "b"), ("IMAGES_TABLE", "t")]).unwrap();
        assert_eq!(c.max_upload_bytes, 25 * 1024 * 1024);
        assert_eq!(c.presign_expires, Duration::from_secs(900));
        assert_eq!(
            Config::require(&c.control_table, "CONTROL_TABLE"),
            Err(ConfigError::Missing("CONTROL_TABLE"))
        );
    }

    #[test]
    fn processing_defaults_follow_the_design_and_bad_specs_are_named() {
        use crate::domain::Stage;
        let c = ProcessingConfig::from_lookup(Stage::Thumbnail, |_| None).unwrap();
        let edges: Vec<u32> = c.specs.iter().map(|s| s.max_edge).collect();
        assert_eq!(edges, vec![150, 300, 600]);
        assert_eq!(c.policy.breaker.threshold, 5);
        assert_eq!(c.policy.breaker.window, Duration::from_secs(3600));
        assert_eq!(c.limits.max_decode_bytes, 512 << 20);
        let small = ProcessingConfig::from_lookup(Stage::Thumbnail, |k| {
            (k == "AWS_LAMBDA_FUNCTION_MEMORY_SIZE").then(|| "256".into())
        })
        .unwrap();
        assert_eq!(
            small.limits.max_decode_bytes,
            128 << 20,
            "half the function's memory"
        );
        let v = ProcessingConfig::from_lookup(Stage::Variant, |_| None).unwrap();
        assert_eq!(v.specs.len(), 4);
        let err = ProcessingConfig::from_lookup(Stage::Variant, |k| {
            (k == "VARIANT_SPECS").then(|| "huge:gif".into())
        })
        .unwrap_err();
        assert!(err.to_string().contains("VARIANT_SPECS"), "{err}");
        let err = ProcessingConfig::from_lookup(Stage::Thumbnail, |k| {
            (k == "BREAKER_THRESHOLD").then(|| "0".into())
        })
        .unwrap_err();
        assert!(err.to_string().contains("BREAKER_THRESHOLD"), "{err}");
    }

    #[test]
    fn owner_limits_default_and_out_of_bounds_values_are_refused_by_name() {
        let c = from(&[("BUCKET", "b"), ("IMAGES_TABLE", "t")]).unwrap();
        assert_eq!(c.owner_limits, crate::limits::OwnerLimits::default());
        let c = from(&[
            ("BUCKET", "b"),
            ("IMAGES_TABLE", "t"),
            ("UPLOADS_PER_MINUTE", "5"),
            ("MAX_CONNECTIONS_PER_OWNER", "2"),
        ])
        .unwrap();
        assert_eq!(c.owner_limits.uploads_per_minute, 5);
        assert_eq!(c.owner_limits.max_connections, 2);
        for (name, value) in [
            ("UPLOADS_PER_MINUTE", "0"),
            ("MAX_AWAITING_UPLOADS", "1001"),
            ("MAX_CONNECTIONS_PER_OWNER", "many"),
            ("RESUME_PAGE_SIZE", "5000"),
        ] {
            let err = from(&[("BUCKET", "b"), ("IMAGES_TABLE", "t"), (name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn presign_expiry_over_fifteen_minutes_is_refused() {
        let err = from(&[
            ("BUCKET", "b"),
            ("IMAGES_TABLE", "t"),
            ("PRESIGN_EXPIRES_SECS", "3600"),
        ])
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "PRESIGN_EXPIRES_SECS",
                ..
            }
        ));
        let err = from(&[
            ("BUCKET", "b"),
            ("IMAGES_TABLE", "t"),
            ("MAX_UPLOAD_BYTES", "lots"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("MAX_UPLOAD_BYTES"));
    }
}
