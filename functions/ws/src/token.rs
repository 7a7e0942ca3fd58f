//! Verifying the `token` query parameter of `$connect`: RS256 JWTs from the OpenID issuer, with
//! the same rules as the HTTP API's JWT authorizer (issuer, audience or `client_id`, expiry).
//!
//! # Why the `$connect` handler verifies, not a REQUEST authorizer
//! A Lambda REQUEST authorizer would be a second function, a second cold start on every connect
//! and an IAM policy document to build, only to hand the `sub` back to this same function. Doing
//! it here keeps one place that both checks the token and stores `connection_id -> owner`, and
//! it runs identically on the local emulator. The cost: API Gateway cannot cache the decision
//! (authorizer caching does not help WebSockets much: every connect carries a fresh query
//! string anyway).
//!
//! # Keys
//! The issuer's JWKS (`{issuer}/.well-known/openid-configuration` -> `jwks_uri`) is fetched on
//! the first connect after a cold start and kept for the life of the execution environment. A
//! token whose `kid` is not in the set triggers one re-fetch (key rotation), at most once per
//! [`REFETCH_INTERVAL`], so a flood of made-up `kid`s cannot turn into a flood of requests to
//! the issuer. Fetching lazily (not at init) means an issuer hiccup fails some connects with 500
//! instead of crash-looping the function.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use safelight::{OwnerId, Timestamp};
use serde::Deserialize;

/// The shortest time between two JWKS fetches caused by unknown key ids.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// Clock skew tolerated on `exp` / `nbf`.
const LEEWAY_SECS: u64 = 5;

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token is missing, malformed, expired, forged or for someone else: 401.
    #[error("token refused: {0}")]
    Refused(&'static str),
    /// The keys could not be fetched; nothing is known about the token: 500.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(#[source] BoxError),
}

/// Turns a bearer token into the owner it was issued to.
pub trait TokenVerifier: Send + Sync {
    /// The owner (`sub`) of a valid token and when the token expires (`exp`).
    fn verify(&self, token: &str) -> impl Future<Output = Result<Verified, TokenError>> + Send;
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The subject, as an owner id.
    pub owner: OwnerId,
    /// The token's `exp`: nothing it authorised may outlive it.
    pub expires_at: Timestamp,
}

/// Where the issuer's public keys come from.
pub trait KeySource: Send + Sync {
    /// The current key set.
    fn fetch(&self) -> impl Future<Output = Result<JwkSet, BoxError>> + Send;
}

/// The claims this function reads; the signature covers all of them.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    client_id: Option<String>,
}

/// `aud` is a string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(a) => a == wanted,
            Audience::Many(all) => all.iter().any(|a| a == wanted),
        }
    }
}

#[derive(Debug)]
struct Cache {
    keys: Option<JwkSet>,
    fetched_at: Option<Instant>,
}

/// RS256 verification against an issuer's JWKS.
#[derive(Debug)]
pub struct JwtVerifier<K> {
    source: K,
    issuer: String,
    audience: String,
    refetch_interval: Duration,
    cache: Mutex<Cache>,
}

impl<K: KeySource> JwtVerifier<K> {
    /// A verifier for tokens of `issuer` meant for `audience` (`aud`, or Cognito's `client_id`).
    pub fn new(source: K, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        JwtVerifier {
            source,
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            audience: audience.into(),
            refetch_interval: REFETCH_INTERVAL,
            cache: Mutex::new(Cache {
                keys: None,
                fetched_at: None,
            }),
        }
    }

    /// Changes the minimum time between re-fetches (tests use zero).
    pub fn with_refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    fn cached(&self) -> (Option<JwkSet>, Option<Instant>) {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        (cache.keys.clone(), cache.fetched_at)
    }

    async fn refresh(&self) -> Result<JwkSet, TokenError> {
        let keys = self
            .source
            .fetch()
            .await
            .map_err(TokenError::KeysUnavailable)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.keys = Some(keys.clone());
        cache.fetched_at = Some(Instant::now());
        Ok(keys)
    }

    /// The key for `kid`: from the cache, else from one (rate-limited) re-fetch.
    async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey, TokenError> {
        let pick = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            // No kid: acceptable only when there is no choice to make.
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let (cached, fetched_at) = self.cached();
        let jwk = match cached.as_ref().and_then(pick) {
            Some(jwk) => jwk,
            None => {
                let may_refetch = fetched_at.is_none_or(|t| t.elapsed() >= self.refetch_interval);
                if !may_refetch {
                    return Err(TokenError::Refused("unknown signing key"));
                }
                pick(&self.refresh().await?).ok_or(TokenError::Refused("unknown signing key"))?
            }
        };
        DecodingKey::from_jwk(&jwk).map_err(|_| TokenError::Refused("unusable signing key"))
    }
}

impl<K: KeySource> TokenVerifier for JwtVerifier<K> {
    async fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        let header = decode_header(token).map_err(|_| TokenError::Refused("malformed token"))?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Refused("only RS256 tokens are accepted"));
        }
        let key = self.key_for(header.kid.as_deref()).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // Checked below: API Gateway's JWT authorizer accepts `aud` or `client_id`.
        validation.validate_aud = false;
        validation.iss = Some(HashSet::from([self.issuer.clone()]));
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(|e| {
                TokenError::Refused(match e.kind() {
                    JwtErrorKind::ExpiredSignature => "token expired",
                    JwtErrorKind::ImmatureSignature => "token not valid yet",
                    JwtErrorKind::InvalidSignature => "bad signature",
                    JwtErrorKind::InvalidIssuer => "wrong issuer",
                    JwtErrorKind::MissingRequiredClaim(_) => "missing claim",
                    _ => "invalid token",
                })
            })?
            .claims;
        let audience_ok = claims
            .aud
            .as_ref()
            .is_some_and(|a| a.contains(&self.audience))
            || claims.client_id.as_deref() == Some(self.audience.as_str());
        if !audience_ok {
            return Err(TokenError::Refused("wrong audience"));
        }
        let owner = claims
            .sub
            .parse()
            .map_err(|_| TokenError::Refused("subject cannot be an owner id"))?;
        Ok(Verified {
            owner,
            expires_at: Timestamp::from_unix_millis(claims.exp.saturating_mul(1000)),
        })
    }
}

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
