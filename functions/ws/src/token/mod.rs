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
//! the first connect after a cold start and cached for [`KeyCachePolicy::ttl`] (10 min by
//! default, `JWKS_CACHE_TTL_SECS`), so a key the issuer withdraws stops being accepted within
//! that time, as with API Gateway's own JWT authorizer. Then:
//! - a token whose `kid` is not in the set triggers a re-fetch (key rotation), and so does the
//!   first connect after the TTL; fetch attempts of either kind are at most one per
//!   [`KeyCachePolicy::refetch_interval`] (10 s), so a flood of made-up `kid`s cannot turn into a
//!   flood of requests to the issuer;
//! - when a re-fetch fails, the cached keys keep serving for [`KeyCachePolicy::grace`] (1 h)
//!   past their TTL, so an issuer outage does not refuse every connect; past that, connects fail
//!   with 500 until the issuer answers.
//!
//! Fetching lazily (not at init) means an issuer hiccup fails some connects with 500 instead of
//! crash-looping the function. Time comes from a [`Clock`], so tests move it by hand.

mod jwks;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use safelight::config::{secs, Bounds, Env, Settings};
use safelight::{ConfigError, OwnerId, Timestamp};
use serde::Deserialize;

pub use jwks::HttpJwks;

/// The shortest time between two JWKS fetch attempts after the first.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// How long fetched keys are used before they are fetched again.
pub const KEYS_TTL: Duration = Duration::from_secs(600);

/// How long past their TTL cached keys keep serving while re-fetches fail.
pub const KEYS_GRACE: Duration = Duration::from_secs(3600);

/// When the issuer's keys are fetched again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct KeyCachePolicy {
    /// How long fetched keys are used before they are fetched again ([`KEYS_TTL`];
    /// `JWKS_CACHE_TTL_SECS`, 60 to 86400).
    #[serde(rename = "jwks_cache_ttl_secs", deserialize_with = "secs")]
    pub ttl: Duration,
    /// How long past `ttl` they keep serving while re-fetches fail ([`KEYS_GRACE`]).
    #[serde(skip)]
    pub grace: Duration,
    /// The shortest time between two fetch attempts after the first ([`REFETCH_INTERVAL`]).
    #[serde(skip)]
    pub refetch_interval: Duration,
}

impl Default for KeyCachePolicy {
    fn default() -> Self {
        KeyCachePolicy {
            ttl: KEYS_TTL,
            grace: KEYS_GRACE,
            refetch_interval: REFETCH_INTERVAL,
        }
    }
}

impl Settings for KeyCachePolicy {
    fn validate(&self) -> Result<(), ConfigError> {
        Bounds::new("JWKS_CACHE_TTL_SECS", 60, 86_400).check_secs(self.ttl)
    }
}

impl KeyCachePolicy {
    /// The policy with `JWKS_CACHE_TTL_SECS` read from the process environment; the rest
    /// default.
    pub fn from_env() -> Result<Self, ConfigError> {
        Env::process().read()
    }
}

/// Where the verifier reads the time (tests move a fake one by hand).
pub trait Clock: Send + Sync {
    /// Now, monotonic.
    fn now(&self) -> Instant;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

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

#[derive(Debug, Default)]
struct Cache {
    keys: Option<JwkSet>,
    /// When `keys` were fetched.
    fetched_at: Option<Instant>,
    /// When the last fetch started, whether it succeeded or not.
    attempted_at: Option<Instant>,
}

/// What to do for one token's key, decided under the cache's lock.
enum Plan {
    /// This cached key: fresh, or within its grace period while fetches fail.
    Use(Jwk),
    /// Fetch; on failure fall back to this cached key (within its grace period).
    Fetch(Option<Jwk>),
    /// No key, and no fetch allowed yet.
    Refuse(TokenError),
}

/// RS256 verification against an issuer's JWKS.
#[derive(Debug)]
pub struct JwtVerifier<K, C = SystemClock> {
    source: K,
    issuer: String,
    audience: String,
    policy: KeyCachePolicy,
    clock: C,
    cache: Mutex<Cache>,
}

impl<K: KeySource> JwtVerifier<K> {
    /// A verifier for tokens of `issuer` meant for `audience` (`aud`, or Cognito's `client_id`).
    pub fn new(source: K, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        JwtVerifier {
            source,
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            audience: audience.into(),
            policy: KeyCachePolicy::default(),
            clock: SystemClock,
            cache: Mutex::new(Cache::default()),
        }
    }
}

impl<K: KeySource, C: Clock> JwtVerifier<K, C> {
    /// The same verifier reading time from `clock`.
    pub fn with_clock<C2: Clock>(self, clock: C2) -> JwtVerifier<K, C2> {
        JwtVerifier {
            source: self.source,
            issuer: self.issuer,
            audience: self.audience,
            policy: self.policy,
            clock,
            cache: self.cache,
        }
    }

    /// Changes when keys are fetched again.
    pub fn with_key_cache(mut self, policy: KeyCachePolicy) -> Self {
        self.policy = policy;
        self
    }

    fn plan(&self, pick: impl Fn(&JwkSet) -> Option<Jwk>) -> Plan {
        let now = self.clock.now();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let age = cache.fetched_at.map(|t| now.saturating_duration_since(t));
        let fresh = age.is_some_and(|a| a < self.policy.ttl);
        let usable = age.is_some_and(|a| a < self.policy.ttl.saturating_add(self.policy.grace));
        let cached = cache.keys.as_ref().filter(|_| usable).and_then(&pick);
        match cached {
            Some(jwk) if fresh => return Plan::Use(jwk),
            _ => {}
        }
        let may_fetch = cache
            .attempted_at
            .is_none_or(|t| now.saturating_duration_since(t) >= self.policy.refetch_interval);
        if may_fetch {
            // Marked before fetching, so requests meanwhile do not fetch too.
            cache.attempted_at = Some(now);
            return Plan::Fetch(cached);
        }
        match cached {
            // Stale, and the last fetch (moments ago) failed: the grace period.
            Some(jwk) => Plan::Use(jwk),
            None if usable => Plan::Refuse(TokenError::Refused("unknown signing key")),
            None => Plan::Refuse(TokenError::KeysUnavailable(
                "no usable signing keys, and the last fetch attempt was moments ago".into(),
            )),
        }
    }

    /// The JWK for `kid`: cached while fresh; else fetched (at most once per refetch interval),
    /// with the cached one as the fallback while it is within its grace period.
    async fn jwk_for(&self, kid: Option<&str>) -> Result<Jwk, TokenError> {
        let pick = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            // No kid: acceptable only when there is no choice to make.
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let unknown = || TokenError::Refused("unknown signing key");
        match self.plan(pick) {
            Plan::Use(jwk) => Ok(jwk),
            Plan::Refuse(e) => Err(e),
            Plan::Fetch(fallback) => match self.source.fetch().await {
                Ok(keys) => {
                    let found = pick(&keys);
                    let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                    cache.keys = Some(keys);
                    cache.fetched_at = Some(self.clock.now());
                    found.ok_or_else(unknown)
                }
                Err(e) => match fallback {
                    Some(jwk) => {
                        tracing::warn!(error = %e, "signing keys could not be re-fetched; the cached ones serve meanwhile");
                        Ok(jwk)
                    }
                    None => Err(TokenError::KeysUnavailable(e)),
                },
            },
        }
    }

    /// The decoding key for `kid`.
    async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey, TokenError> {
        let jwk = self.jwk_for(kid).await?;
        DecodingKey::from_jwk(&jwk).map_err(|_| TokenError::Refused("unusable signing key"))
    }
}

impl<K: KeySource, C: Clock> TokenVerifier for JwtVerifier<K, C> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    const PUBLISHED: &str = include_str!("../../tests/keys/jwks-published.json");
    const ROTATED: &str = include_str!("../../tests/keys/jwks-rotated.json");

    fn set(json: &str) -> JwkSet {
        serde_json::from_str(json).unwrap()
    }

    /// Only the rotated key: the published one withdrawn.
    fn withdrawn() -> JwkSet {
        let mut s = set(ROTATED);
        s.keys
            .retain(|k| k.common.key_id.as_deref() == Some("kid-rotated"));
        s
    }

    /// Answers in turn (`None` = the issuer is down); the last answer repeats. Counts calls.
    #[derive(Debug, Clone, Default)]
    struct FakeSource {
        answers: Arc<Mutex<VecDeque<Option<JwkSet>>>>,
        calls: Arc<AtomicUsize>,
    }

    impl FakeSource {
        fn answering(answers: Vec<Option<JwkSet>>) -> Self {
            FakeSource {
                answers: Arc::new(Mutex::new(answers.into())),
                calls: Arc::default(),
            }
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl KeySource for FakeSource {
        async fn fetch(&self) -> Result<JwkSet, BoxError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut answers = self.answers.lock().unwrap();
            let answer = if answers.len() > 1 {
                answers.pop_front().flatten()
            } else {
                answers.front().cloned().flatten()
            };
            answer.ok_or_else(|| "issuer unreachable".into())
        }
    }

    /// A clock moved by hand.
    #[derive(Debug, Clone)]
    struct FakeClock {
        start: Instant,
        offset: Arc<Mutex<Duration>>,
    }

    impl FakeClock {
        fn new() -> Self {
            FakeClock {
                start: Instant::now(),
                offset: Arc::default(),
            }
        }

        fn advance(&self, by: Duration) {
            *self.offset.lock().unwrap() += by;
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            self.start + *self.offset.lock().unwrap()
        }
    }

    const MIN: Duration = Duration::from_secs(60);
    const SEC: Duration = Duration::from_secs(1);

    fn verifier(source: &FakeSource, clock: &FakeClock) -> JwtVerifier<FakeSource, FakeClock> {
        JwtVerifier::new(source.clone(), "https://issuer.test", "safelight")
            .with_clock(clock.clone())
            .with_key_cache(KeyCachePolicy {
                ttl: 10 * MIN,
                grace: 60 * MIN,
                refetch_interval: 10 * SEC,
            })
    }

    fn kid(r: &Result<Jwk, TokenError>) -> Option<&str> {
        r.as_ref().ok().and_then(|k| k.common.key_id.as_deref())
    }

    #[tokio::test]
    async fn keys_are_fetched_once_and_served_from_the_cache_until_their_ttl() {
        let (source, clock) = (
            FakeSource::answering(vec![Some(set(PUBLISHED))]),
            FakeClock::new(),
        );
        let v = verifier(&source, &clock);
        for _ in 0..5 {
            assert_eq!(
                kid(&v.jwk_for(Some("kid-published")).await),
                Some("kid-published")
            );
            clock.advance(MIN);
        }
        assert_eq!(source.calls(), 1, "five connects within the TTL: one fetch");
        clock.advance(5 * MIN); // 10 min after the fetch
        assert_eq!(
            kid(&v.jwk_for(Some("kid-published")).await),
            Some("kid-published")
        );
        assert_eq!(
            source.calls(),
            2,
            "the first connect after the TTL fetches again"
        );
    }

    #[tokio::test]
    async fn a_key_the_issuer_withdraws_is_refused_once_the_ttl_has_passed() {
        let source = FakeSource::answering(vec![Some(set(ROTATED)), Some(withdrawn())]);
        let clock = FakeClock::new();
        let v = verifier(&source, &clock);
        assert!(v.jwk_for(Some("kid-published")).await.is_ok());
        clock.advance(10 * MIN - SEC);
        assert!(
            v.jwk_for(Some("kid-published")).await.is_ok(),
            "still within the TTL"
        );
        clock.advance(SEC);
        assert!(matches!(
            v.jwk_for(Some("kid-published")).await,
            Err(TokenError::Refused("unknown signing key"))
        ));
        assert_eq!(
            kid(&v.jwk_for(Some("kid-rotated")).await),
            Some("kid-rotated")
        );
        assert_eq!(source.calls(), 2);
    }

    #[tokio::test]
    async fn unknown_kids_fetch_at_most_once_per_refetch_interval() {
        let source = FakeSource::answering(vec![Some(set(PUBLISHED)), Some(set(ROTATED))]);
        let clock = FakeClock::new();
        let v = verifier(&source, &clock);
        assert!(v.jwk_for(Some("kid-published")).await.is_ok());
        clock.advance(10 * SEC);
        // A flood of made-up kids: one fetch, then refusals without asking the issuer.
        for i in 0..100 {
            let r = v.jwk_for(Some(&format!("forged-{i}"))).await;
            assert!(matches!(r, Err(TokenError::Refused("unknown signing key"))));
        }
        assert_eq!(source.calls(), 2, "one re-fetch for a hundred unknown kids");
        // The real rotation within the same interval waits for the next one.
        assert!(
            v.jwk_for(Some("kid-rotated")).await.is_ok(),
            "the re-fetch brought it"
        );
        clock.advance(9 * SEC);
        assert!(v.jwk_for(Some("forged-again")).await.is_err());
        assert_eq!(source.calls(), 2);
        clock.advance(SEC);
        assert!(v.jwk_for(Some("forged-again")).await.is_err());
        assert_eq!(source.calls(), 3, "the next interval allows one more");
        assert!(
            v.jwk_for(Some("kid-published")).await.is_ok(),
            "known keys never wait"
        );
    }

    #[tokio::test]
    async fn cached_keys_keep_serving_through_a_failed_refetch_within_the_grace_period() {
        let source = FakeSource::answering(vec![Some(set(PUBLISHED)), None]);
        let clock = FakeClock::new();
        let v = verifier(&source, &clock);
        assert!(v.jwk_for(Some("kid-published")).await.is_ok());
        clock.advance(10 * MIN);
        assert!(
            v.jwk_for(Some("kid-published")).await.is_ok(),
            "stale, refetch failed: cached"
        );
        assert_eq!(source.calls(), 2);
        for _ in 0..50 {
            assert!(v.jwk_for(Some("kid-published")).await.is_ok());
        }
        assert_eq!(
            source.calls(),
            2,
            "while the issuer is down: one attempt per interval"
        );
        // An unknown kid during the outage: nothing is known about it.
        clock.advance(10 * SEC);
        assert!(matches!(
            v.jwk_for(Some("kid-rotated")).await,
            Err(TokenError::KeysUnavailable(_))
        ));
        // Grace ends 70 min after the fetch: then the issuer must answer.
        clock.advance(60 * MIN - 10 * SEC - SEC);
        assert!(
            v.jwk_for(Some("kid-published")).await.is_ok(),
            "last second of grace"
        );
        clock.advance(SEC);
        assert!(matches!(
            v.jwk_for(Some("kid-published")).await,
            Err(TokenError::KeysUnavailable(_))
        ));
        clock.advance(SEC);
        assert!(
            matches!(
                v.jwk_for(Some("kid-published")).await,
                Err(TokenError::KeysUnavailable(_))
            ),
            "past grace, between attempts: still unavailable, not refused"
        );
    }

    #[tokio::test]
    async fn the_issuer_back_after_an_outage_renews_the_cache() {
        let source = FakeSource::answering(vec![Some(set(PUBLISHED)), None, Some(set(ROTATED))]);
        let clock = FakeClock::new();
        let v = verifier(&source, &clock);
        assert!(v.jwk_for(Some("kid-published")).await.is_ok());
        clock.advance(11 * MIN);
        assert!(
            v.jwk_for(Some("kid-published")).await.is_ok(),
            "served stale"
        );
        clock.advance(10 * SEC);
        assert!(v.jwk_for(Some("kid-published")).await.is_ok());
        assert_eq!(source.calls(), 3, "the next attempt succeeded");
        clock.advance(9 * MIN);
        assert_eq!(
            kid(&v.jwk_for(Some("kid-rotated")).await),
            Some("kid-rotated")
        );
        assert_eq!(source.calls(), 3, "fresh again: no fetch");
    }

    #[tokio::test]
    async fn an_issuer_down_at_cold_start_is_asked_again_after_the_interval_not_on_every_connect() {
        let source = FakeSource::answering(vec![None, Some(set(PUBLISHED))]);
        let clock = FakeClock::new();
        let v = verifier(&source, &clock);
        for _ in 0..10 {
            assert!(matches!(
                v.jwk_for(Some("kid-published")).await,
                Err(TokenError::KeysUnavailable(_))
            ));
        }
        assert_eq!(source.calls(), 1);
        clock.advance(10 * SEC);
        assert!(v.jwk_for(Some("kid-published")).await.is_ok());
        assert_eq!(source.calls(), 2);
    }

    #[test]
    fn the_ttl_is_read_from_jwks_cache_ttl_secs_and_a_bad_value_is_named() {
        let read =
            |value: &str| Env::from_vars([("JWKS_CACHE_TTL_SECS", value)]).read::<KeyCachePolicy>();
        let p: KeyCachePolicy = Env::default().read().unwrap();
        assert_eq!(p, KeyCachePolicy::default());
        assert_eq!(p.ttl, Duration::from_secs(600));
        assert_eq!(read("300").unwrap().ttl, Duration::from_secs(300));
        for bad in ["0", "59", "86401", "ten"] {
            let err = read(bad).unwrap_err();
            assert!(err.to_string().contains("JWKS_CACHE_TTL_SECS"), "{err}");
        }
    }
}
