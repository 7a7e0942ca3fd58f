//! The production [`KeySource`]: the issuer's JWKS over HTTP(S), found through OpenID discovery.

use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;

use super::{BoxError, KeySource};

/// The issuer's JWKS over HTTP(S), found through OpenID discovery.
#[derive(Debug, Clone)]
pub struct HttpJwks {
    http: reqwest::Client,
    issuer: String,
}

#[derive(Debug, Deserialize)]
struct Discovery {
    jwks_uri: String,
}

impl HttpJwks {
    /// Keys of `issuer` (its `/.well-known/openid-configuration` names the JWKS URL).
    pub fn new(issuer: &str) -> Result<Self, reqwest::Error> {
        Ok(HttpJwks {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()?,
            issuer: issuer.trim_end_matches('/').to_owned(),
        })
    }
}

impl KeySource for HttpJwks {
    async fn fetch(&self) -> Result<JwkSet, BoxError> {
        let discovery: Discovery = self
            .http
            .get(format!("{}/.well-known/openid-configuration", self.issuer))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let keys: JwkSet = self
            .http
            .get(&discovery.jwks_uri)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        tracing::info!(keys = keys.keys.len(), "fetched the issuer's signing keys");
        Ok(keys)
    }
}
