//! [`Config`]: the resources and limits every function reads from its environment.

use std::time::Duration;

use serde::Deserialize;

use super::{secs, Bounds, ConfigError, Env, Settings};
use crate::domain::link;
use crate::limits::OwnerLimits;

/// The largest body the direct-upload fast path takes. API Gateway hands binary bodies to
/// Lambda base64-encoded, and a synchronous Lambda payload is at most 6 MB: 4 MiB of image is
/// 5.6 MB encoded, leaving room for headers. (A 5 MiB limit would be ~7 MB encoded and be
/// refused by the platform before our handler could answer with a clear error.)
pub const MAX_DIRECT_UPLOAD_BYTES: u64 = 4 * 1024 * 1024;

/// The longest a presigned upload may stay valid.
pub const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(15 * 60);

const MAX_UPLOAD_BYTES: Bounds = Bounds::new("MAX_UPLOAD_BYTES", 1, 5 * 1024 * 1024 * 1024)
    .because("1 byte to 5 GiB, S3's single PUT limit");
const PRESIGN_EXPIRES_SECS: Bounds =
    Bounds::new("PRESIGN_EXPIRES_SECS", 1, MAX_PRESIGN_EXPIRY.as_secs());
const LINK_WINDOW_SECS: Bounds = Bounds::new(
    "LINK_WINDOW_SECS",
    link::MIN_WINDOW.as_secs(),
    link::MAX_WINDOW.as_secs(),
)
.because("10 seconds to 3 days: a link lives two windows, a SigV4 URL at most 7 days");
const UPLOADS_PER_MINUTE: Bounds = Bounds::new("UPLOADS_PER_MINUTE", 1, 100_000);
const MAX_AWAITING_UPLOADS: Bounds = Bounds::new("MAX_AWAITING_UPLOADS", 1, 1_000);
const MAX_CONNECTIONS_PER_OWNER: Bounds = Bounds::new("MAX_CONNECTIONS_PER_OWNER", 1, 1_000);
const RESUME_PAGE_SIZE: Bounds = Bounds::new("RESUME_PAGE_SIZE", 10, 500)
    .because("a page is posted frame by frame within the ws function's 10 s timeout");

/// Everything the functions read from their environment. Resources a function does not use are
/// optional here; the function asks for them with [`Config::require`] at init.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
    #[serde(default = "default_max_upload_bytes")]
    pub max_upload_bytes: u64,
    /// `PRESIGN_EXPIRES_SECS`: validity of presigned uploads (default and maximum 900 s).
    #[serde(
        rename = "presign_expires_secs",
        deserialize_with = "secs",
        default = "default_presign_expires"
    )]
    pub presign_expires: Duration,
    /// `SAFELIGHT_FAULTS`: fault injection spec, off unless set (see `faults`).
    #[serde(rename = "safelight_faults")]
    pub faults: Option<String>,
    /// `LINK_WINDOW_SECS`: download links stay the same this long and live twice as long
    /// (default 3600; 10 s to 3 days, see [`crate::domain::link`]).
    #[serde(
        rename = "link_window_secs",
        deserialize_with = "secs",
        default = "default_link_window"
    )]
    pub link_window: Duration,
    /// The CDN download links are signed for, when deliveries go through CloudFront (all three
    /// of `DELIVERY_DOMAIN`, `DELIVERY_KEY_PAIR_ID`, `DELIVERY_PRIVATE_KEY_SECRET_ARN`, else S3
    /// presigned GETs).
    #[serde(skip)]
    pub delivery: Option<CdnDelivery>,
    /// `UPLOADS_PER_MINUTE`, `MAX_AWAITING_UPLOADS`, `MAX_CONNECTIONS_PER_OWNER`,
    /// `RESUME_PAGE_SIZE`: the per-owner limits (defaults in [`OwnerLimits`]).
    #[serde(skip)]
    pub owner_limits: OwnerLimits,
}

fn default_max_upload_bytes() -> u64 {
    25 * 1024 * 1024
}

fn default_presign_expires() -> Duration {
    MAX_PRESIGN_EXPIRY
}

fn default_link_window() -> Duration {
    Duration::from_secs(3600)
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

/// The three `DELIVERY_*` variables, which go together.
#[derive(Deserialize)]
struct DeliveryVars {
    delivery_domain: Option<String>,
    delivery_key_pair_id: Option<String>,
    delivery_private_key_secret_arn: Option<String>,
}

impl DeliveryVars {
    fn into_delivery(self) -> Result<Option<CdnDelivery>, ConfigError> {
        match (
            self.delivery_domain,
            self.delivery_key_pair_id,
            self.delivery_private_key_secret_arn,
        ) {
            (Some(domain), Some(key_pair_id), Some(private_key_secret_arn)) => Ok(Some(CdnDelivery {
                domain,
                key_pair_id,
                private_key_secret_arn,
            })),
            (None, None, None) => Ok(None),
            _ => Err(ConfigError::Invalid {
                name: "DELIVERY_DOMAIN",
                reason: "DELIVERY_DOMAIN, DELIVERY_KEY_PAIR_ID and DELIVERY_PRIVATE_KEY_SECRET_ARN go together (all set: CloudFront; none: S3 presigned GETs)".into(),
            }),
        }
    }
}

impl Settings for OwnerLimits {
    fn validate(&self) -> Result<(), ConfigError> {
        UPLOADS_PER_MINUTE.check(self.uploads_per_minute)?;
        MAX_AWAITING_UPLOADS.check(self.max_awaiting_uploads)?;
        MAX_CONNECTIONS_PER_OWNER.check(self.max_connections)?;
        RESUME_PAGE_SIZE.check(self.resume_page)
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    /// Reads `env`, checking each setting's bounds.
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let config = Config {
            delivery: env.parse::<DeliveryVars>()?.into_delivery()?,
            owner_limits: env.read()?,
            ..env.parse()?
        };
        MAX_UPLOAD_BYTES.check(config.max_upload_bytes)?;
        PRESIGN_EXPIRES_SECS.check_secs(config.presign_expires)?;
        LINK_WINDOW_SECS.check_secs(config.link_window)?;
        Ok(config)
    }

    /// An optional resource this function cannot run without.
    pub fn require<'a>(
        value: &'a Option<String>,
        name: &'static str,
    ) -> Result<&'a str, ConfigError> {
        value
            .as_deref()
            .ok_or_else(|| ConfigError::Missing(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::read(&Env::from_vars(pairs.iter().copied()))
    }

    /// Each of `cases` (one variable set to one value) is refused, naming the variable.
    fn each_refused_by_name(cases: &[(&str, &str)]) {
        for &(name, value) in cases {
            let err = from(&[("BUCKET", "b"), ("IMAGES_TABLE", "t"), (name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn defaults_apply_and_a_missing_bucket_is_named() {
        assert_eq!(
            from(&[("IMAGES_TABLE", "t")]),
            Err(ConfigError::Missing("BUCKET".into()))
        );
        let c = from(&[("BUCKET", "b"), ("IMAGES_TABLE", "t")]).unwrap();
        assert_eq!(c.max_upload_bytes, 25 * 1024 * 1024);
        assert_eq!(c.presign_expires, Duration::from_secs(900));
        assert_eq!(c.link_window, Duration::from_secs(3600));
        assert_eq!(c.delivery, None);
        assert_eq!(
            Config::require(&c.control_table, "CONTROL_TABLE"),
            Err(ConfigError::Missing("CONTROL_TABLE".into()))
        );
    }

    #[test]
    fn owner_limits_default_and_out_of_bounds_values_are_refused_by_name() {
        let c = from(&[("BUCKET", "b"), ("IMAGES_TABLE", "t")]).unwrap();
        assert_eq!(c.owner_limits, OwnerLimits::default());
        let c = from(&[
            ("BUCKET", "b"),
            ("IMAGES_TABLE", "t"),
            ("UPLOADS_PER_MINUTE", "5"),
            ("MAX_CONNECTIONS_PER_OWNER", "2"),
        ])
        .unwrap();
        assert_eq!(c.owner_limits.uploads_per_minute, 5);
        assert_eq!(c.owner_limits.max_connections, 2);
        each_refused_by_name(&[
            ("UPLOADS_PER_MINUTE", "0"),
            ("MAX_AWAITING_UPLOADS", "1001"),
            ("MAX_CONNECTIONS_PER_OWNER", "many"),
            ("RESUME_PAGE_SIZE", "5000"),
            ("RESUME_PAGE_SIZE", "9"),
        ]);
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
        each_refused_by_name(&[
            ("MAX_UPLOAD_BYTES", "lots"),
            ("MAX_UPLOAD_BYTES", "0"),
            ("MAX_UPLOAD_BYTES", "5368709121"),
            ("LINK_WINDOW_SECS", "9"),
            ("LINK_WINDOW_SECS", "259201"),
        ]);
    }

    #[test]
    fn defaults_and_bounds_agree_with_the_template() {
        let c = from(&[("BUCKET", "b"), ("IMAGES_TABLE", "t")]).unwrap();
        let l = c.owner_limits;
        for (bounds, default) in [
            (MAX_UPLOAD_BYTES, c.max_upload_bytes),
            (PRESIGN_EXPIRES_SECS, c.presign_expires.as_secs()),
            (LINK_WINDOW_SECS, c.link_window.as_secs()),
            (UPLOADS_PER_MINUTE, l.uploads_per_minute.into()),
            (MAX_AWAITING_UPLOADS, l.max_awaiting_uploads.into()),
            (MAX_CONNECTIONS_PER_OWNER, l.max_connections.into()),
            (RESUME_PAGE_SIZE, l.resume_page.into()),
        ] {
            super::super::template::agrees(bounds, default);
        }
    }

    #[test]
    fn the_delivery_variables_go_together() {
        let all = [
            ("BUCKET", "b"),
            ("IMAGES_TABLE", "t"),
            ("DELIVERY_DOMAIN", "d.cloudfront.net"),
            ("DELIVERY_KEY_PAIR_ID", "K1"),
            ("DELIVERY_PRIVATE_KEY_SECRET_ARN", "arn:s"),
        ];
        assert_eq!(
            from(&all).unwrap().delivery,
            Some(CdnDelivery {
                domain: "d.cloudfront.net".into(),
                key_pair_id: "K1".into(),
                private_key_secret_arn: "arn:s".into(),
            })
        );
        let err = from(&all[..4]).unwrap_err();
        assert!(err.to_string().contains("DELIVERY_DOMAIN"), "{err}");
    }
}
