//! CloudFront signed URLs for the delivery distribution (`Delivery=cloudfront`, see
//! docs/DELIVERY.md): a canned policy (one URL, one expiry) signed RSA-SHA1 PKCS#1 v1.5 with the
//! private half of the key whose public half is in the distribution's trusted key group, and the
//! loader of that private key from Secrets Manager (`DELIVERY_PRIVATE_KEY_SECRET_ARN`).
//!
//! Signing is deterministic: the same path, query and expiry give the same URL, byte for byte.
//! That is what lets a caller round the expiry to a window and hand out one stable URL per
//! object for hours, which browsers and CloudFront then cache on.
//!
//! The private key never leaves this module: it is not logged, not shown by `Debug`, not put
//! in an error, and it is wiped from memory when the signer is dropped.

use std::fmt;
use std::sync::Arc;

use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::traits::PublicKeyParts as _;
use rsa::PrivateKey;
use sha1::Sha1;

/// The only RSA key size CloudFront accepts for signed URLs.
pub const KEY_BITS: u32 = 2048;

/// Query parameters CloudFront reads for a signed URL; a caller's own query may not use them.
const RESERVED_QUERY: [&str; 5] = [
    "Expires",
    "Signature",
    "Key-Pair-Id",
    "Policy",
    "Hash-Algorithm",
];

/// What stays as is in a path segment or a query component: RFC 3986's unreserved characters.
/// Everything else is percent-encoded, so the URL a browser sends is the very string the policy
/// names (a browser leaves `%XX` alone and has nothing left to encode).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a signer could not be made, or a URL not signed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The domain must be a bare host name such as `d111111abcdef8.cloudfront.net`.
    #[error("delivery domain {0:?} is not a bare host name (no scheme, port or path)")]
    Domain(String),
    /// The key pair id must be the id CloudFront gave the public key (e.g. `K2JCJMDEHXQW5F`).
    #[error("key pair id {0:?} is not a CloudFront public key id")]
    KeyPairId(String),
    /// A PEM labelled `PRIVATE KEY` that does not decode as a PKCS#8 RSA key.
    #[error("the signing key is not a PKCS#8 PEM RSA private key")]
    Pkcs8(#[source] rsa::pkcs8::Error),
    /// A PEM labelled `RSA PRIVATE KEY` that does not decode as a PKCS#1 key.
    #[error("the signing key is not a PKCS#1 PEM RSA private key")]
    Pkcs1(#[source] rsa::pkcs1::Error),
    /// CloudFront verifies signed URLs with 2048-bit RSA keys only.
    #[error("the signing key is {bits}-bit RSA, CloudFront takes {KEY_BITS}-bit keys")]
    KeySize {
        /// The key's modulus size.
        bits: u32,
    },
    /// An object key that no URL path can name exactly (browsers rewrite `.` and `..` segments).
    #[error("object key {0:?} has an empty, `.` or `..` segment, which no URL path keeps")]
    Path(String),
    /// A query parameter of the caller's that CloudFront would take as part of the signature.
    #[error("query parameter {0:?} is reserved for CloudFront's signed URLs")]
    ReservedQuery(String),
    /// An expiry at or before the epoch.
    #[error("expiry {0} is not a time after 1970-01-01")]
    Expiry(i64),
    /// The RSA operation failed (the OS random source used for blinding, or the key's own
    /// self-check); a valid key does not fail.
    #[error("signing the policy failed")]
    Sign(#[source] rsa::signature::Error),
    /// Secrets Manager refused or failed `GetSecretValue`.
    #[error("reading the signing key's secret failed")]
    Secret(#[source] Box<aws_sdk_secretsmanager::error::SdkError<GetSecretValueError>>),
    /// The secret has no `SecretString` (the key is stored as PEM text).
    #[error("the signing key's secret holds no SecretString (expected the PEM text)")]
    SecretNotAString,
}

/// Signs CloudFront URLs with a canned policy for one distribution and one key. Cheap to clone
/// (the key is shared, and wiped when the last clone is dropped).
#[derive(Clone)]
pub struct CloudFrontSigner {
    domain: String,
    key_pair_id: String,
    key: Arc<SigningKey<Sha1>>,
}

impl fmt::Debug for CloudFrontSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("CloudFrontSigner")
            .field("domain", &self.domain)
            .field("key_pair_id", &self.key_pair_id)
            .finish_non_exhaustive()
    }
}

impl CloudFrontSigner {
    /// A signer for `https://{domain}/…` with the private key whose public half CloudFront knows
    /// as `key_pair_id`. The PEM is PKCS#8 (`BEGIN PRIVATE KEY`, what `openssl genpkey` and
    /// `make deploy` write) or PKCS#1 (`BEGIN RSA PRIVATE KEY`), RSA 2048.
    pub fn from_pem(
        domain: &str,
        key_pair_id: &str,
        private_key_pem: &str,
    ) -> Result<Self, DeliveryError> {
        let host_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        if domain.is_empty() || !domain.chars().all(host_char) || domain.starts_with('.') {
            return Err(DeliveryError::Domain(domain.to_owned()));
        }
        if key_pair_id.is_empty() || !key_pair_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(DeliveryError::KeyPairId(key_pair_id.to_owned()));
        }
        let key = if private_key_pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
            PrivateKey::from_pkcs1_pem(private_key_pem).map_err(DeliveryError::Pkcs1)?
        } else {
            PrivateKey::from_pkcs8_pem(private_key_pem).map_err(DeliveryError::Pkcs8)?
        };
        let bits = key.n().bit_width();
        if bits != KEY_BITS {
            return Err(DeliveryError::KeySize { bits });
        }
        Ok(Self {
            domain: domain.to_owned(),
            key_pair_id: key_pair_id.to_owned(),
            key: Arc::new(SigningKey::new(key)),
        })
    }

    /// Reads the private key's PEM from the Secrets Manager secret `secret_arn` (its current
    /// version's `SecretString`) and makes a signer with it. Call once at cold start.
    pub async fn load(
        sdk: &aws_config::SdkConfig,
        domain: &str,
        key_pair_id: &str,
        secret_arn: &str,
    ) -> Result<Self, DeliveryError> {
        let client = aws_sdk_secretsmanager::Client::new(sdk);
        let out = client
            .get_secret_value()
            .secret_id(secret_arn)
            .send()
            .await
            .map_err(|err| DeliveryError::Secret(Box::new(err)))?;
        let pem = out.secret_string().ok_or(DeliveryError::SecretNotAString)?;
        Self::from_pem(domain, key_pair_id, pem)
    }

    /// The distribution's domain the URLs point at.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The CloudFront public key id the URLs name (`Key-Pair-Id`).
    pub fn key_pair_id(&self) -> &str {
        &self.key_pair_id
    }

    /// `https://{domain}/{path}?Expires=…&Signature=…&Key-Pair-Id=…`, valid until
    /// `expires_unix_secs` (seconds since the epoch, UTC). `path` is the object key; each of its
    /// segments is percent-encoded. Same inputs, same URL.
    pub fn signed_url(&self, path: &str, expires_unix_secs: i64) -> Result<String, DeliveryError> {
        self.signed_url_with_query(path, &[], expires_unix_secs)
    }

    /// As [`signed_url`](Self::signed_url), with the caller's own query parameters (e.g. an
    /// original's `versionId`) before the signature's; they are part of the signed resource.
    pub fn signed_url_with_query(
        &self,
        path: &str,
        query: &[(&str, &str)],
        expires_unix_secs: i64,
    ) -> Result<String, DeliveryError> {
        if expires_unix_secs <= 0 {
            return Err(DeliveryError::Expiry(expires_unix_secs));
        }
        let resource = self.resource(path, query)?;
        let policy = canned_policy(&resource, expires_unix_secs);
        let signature = self
            .key
            .try_sign(policy.as_bytes())
            .map_err(DeliveryError::Sign)?;
        let signature = url_safe_base64(&signature.to_bytes());
        let separator = if query.is_empty() { '?' } else { '&' };
        Ok(format!(
            "{resource}{separator}Expires={expires_unix_secs}&Signature={signature}&Key-Pair-Id={}",
            self.key_pair_id
        ))
    }

    /// The query (`Policy=…&Signature=…&Key-Pair-Id=…`) of a custom-policy signature that
    /// grants every object `*/{image_dir}/*` until `expires_unix_secs`: one RSA signature covers
    /// all of an image's derivatives (`thumbnails/{id}/…`, `variants/{id}/…`; an original's key
    /// ends with its id, so it is not covered). Append it to [`Self::url`] of any such key.
    /// Same inputs, same query.
    pub fn image_query(
        &self,
        image_dir: &str,
        expires_unix_secs: i64,
    ) -> Result<String, DeliveryError> {
        if expires_unix_secs <= 0 {
            return Err(DeliveryError::Expiry(expires_unix_secs));
        }
        if image_dir.is_empty() || !image_dir.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(DeliveryError::Path(image_dir.to_owned()));
        }
        let resource = format!("https://{}/*/{image_dir}/*", self.domain);
        let policy = canned_policy(&resource, expires_unix_secs);
        let signature = self
            .key
            .try_sign(policy.as_bytes())
            .map_err(DeliveryError::Sign)?;
        Ok(format!(
            "Policy={}&Signature={}&Key-Pair-Id={}",
            url_safe_base64(policy.as_bytes()),
            url_safe_base64(&signature.to_bytes()),
            self.key_pair_id
        ))
    }

    /// `https://{domain}/{path}` with each segment percent-encoded, unsigned.
    pub fn url(&self, path: &str) -> Result<String, DeliveryError> {
        self.resource(path, &[])
    }

    /// The base URL the policy names: scheme, domain, encoded path and the caller's query.
    fn resource(&self, path: &str, query: &[(&str, &str)]) -> Result<String, DeliveryError> {
        let mut url = format!("https://{}", self.domain);
        for segment in path.split('/') {
            if matches!(segment, "" | "." | "..") {
                return Err(DeliveryError::Path(path.to_owned()));
            }
            url.push('/');
            url.extend(utf8_percent_encode(segment, UNRESERVED));
        }
        for (i, (name, value)) in query.iter().enumerate() {
            if RESERVED_QUERY.contains(name) {
                return Err(DeliveryError::ReservedQuery((*name).to_owned()));
            }
            url.push(if i == 0 { '?' } else { '&' });
            url.extend(utf8_percent_encode(name, UNRESERVED));
            url.push('=');
            url.extend(utf8_percent_encode(value, UNRESERVED));
        }
        Ok(url)
    }
}

/// The canned policy CloudFront rebuilds from a signed URL's resource and `Expires`, exactly as
/// AWS documents it: no white space, keys in this order. The resource needs no JSON escaping:
/// it is percent-encoded ASCII.
fn canned_policy(resource: &str, expires_unix_secs: i64) -> String {
    format!(
        r#"{{"Statement":[{{"Resource":"{resource}","Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires_unix_secs}}}}}}}]}}"#
    )
}

/// Base64 with CloudFront's substitutions for characters a query string cannot carry:
/// `+` -> `-`, `=` -> `_`, `/` -> `~`.
fn url_safe_base64(bytes: &[u8]) -> String {
    STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '=' => '_',
            '/' => '~',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::OnceLock;

    use aws_sdk_secretsmanager::error::ProvideErrorMetadata as _;
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::pkcs8::{EncodePrivateKey as _, LineEnding};
    use rsa::signature::Verifier as _;

    use super::*;

    const DOMAIN: &str = "d111111abcdef8.cloudfront.net";
    const KEY_ID: &str = "K2JCJMDEHXQW5F";
    const EXPIRES: i64 = 1_767_290_400;

    /// One 2048-bit key for the whole test binary (generating one takes a while unoptimised).
    fn key() -> &'static PrivateKey {
        static KEY: OnceLock<PrivateKey> = OnceLock::new();
        KEY.get_or_init(|| {
            PrivateKey::new(&mut getrandom::SysRng, 2048).expect("a 2048-bit key is generated")
        })
    }

    fn pkcs8_pem() -> String {
        key()
            .to_pkcs8_pem(LineEnding::LF)
            .expect("encodes")
            .to_string()
    }

    fn signer() -> CloudFrontSigner {
        CloudFrontSigner::from_pem(DOMAIN, KEY_ID, &pkcs8_pem()).expect("a valid signer")
    }

    /// (resource, Expires, Signature, Key-Pair-Id) of a signed URL, split the way CloudFront does:
    /// its own three parameters are the last three.
    fn parts(url: &str) -> (String, String, String, String) {
        let (rest, key_id) = url.rsplit_once("&Key-Pair-Id=").expect("Key-Pair-Id last");
        let (rest, signature) = rest
            .rsplit_once("&Signature=")
            .expect("Signature before it");
        let (resource, expires) = rest
            .rsplit_once("?Expires=")
            .or_else(|| rest.rsplit_once("&Expires="))
            .expect("Expires before it");
        (
            resource.into(),
            expires.into(),
            signature.into(),
            key_id.into(),
        )
    }

    /// The parts (as [`parts`] splits them) of the test signer's URL for `path` until
    /// [`EXPIRES`].
    fn signed_parts(path: &str) -> (String, String, String, String) {
        parts(&signer().signed_url(path, EXPIRES).expect("signs"))
    }

    /// Standard base64 from CloudFront's URL-safe substitutions.
    fn from_url_safe(s: &str) -> String {
        s.replace('-', "+").replace('_', "=").replace('~', "/")
    }

    fn verifies(resource: &str, expires: &str, signature: &str) -> bool {
        let policy = format!(
            r#"{{"Statement":[{{"Resource":"{resource}","Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires}}}}}}}]}}"#
        );
        let bytes = STANDARD.decode(from_url_safe(signature)).expect("base64");
        let signature = Signature::try_from(bytes.as_slice()).expect("a signature");
        VerifyingKey::<Sha1>::new(key().to_public_key())
            .verify(policy.as_bytes(), &signature)
            .is_ok()
    }

    #[test]
    fn a_signed_url_names_the_object_the_expiry_the_signature_and_the_key_pair() {
        let url = signer()
            .signed_url("thumbnails/01JABC/256.webp", EXPIRES)
            .expect("signs");
        let (resource, expires, signature, key_id) = parts(&url);
        assert_eq!(
            resource,
            format!("https://{DOMAIN}/thumbnails/01JABC/256.webp")
        );
        assert_eq!(expires, EXPIRES.to_string());
        assert_eq!(key_id, KEY_ID);
        // 256 bytes of signature: 344 base64 characters, CloudFront's alphabet only.
        assert_eq!(signature.len(), 344);
        assert!(
            signature
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_~".contains(c)),
            "{signature}"
        );
        assert!(url.starts_with(&format!(
            "https://{DOMAIN}/thumbnails/01JABC/256.webp?Expires="
        )));
    }

    #[test]
    fn the_signature_verifies_with_the_public_key_over_the_documented_canned_policy() {
        let (resource, expires, signature, _) = signed_parts("variants/01JABC/display.jpg");
        assert!(verifies(&resource, &expires, &signature));
        // The policy is bound to the resource and the expiry: change either and it fails.
        assert!(!verifies(
            &format!("https://{DOMAIN}/variants/01JABC/other.jpg"),
            &expires,
            &signature
        ));
        assert!(!verifies(&resource, &(EXPIRES + 1).to_string(), &signature));
    }

    #[test]
    fn one_custom_policy_signature_covers_every_derivative_of_one_image() {
        let signer = signer();
        let query = signer.image_query("01JABC", EXPIRES).expect("signs");
        assert_eq!(query, signer.image_query("01JABC", EXPIRES).expect("signs"));
        let field = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .expect("field")
                .to_owned()
        };
        assert_eq!(field("Key-Pair-Id"), KEY_ID);
        let policy = STANDARD
            .decode(from_url_safe(&field("Policy")))
            .expect("base64");
        let policy = String::from_utf8(policy).expect("utf-8");
        assert_eq!(
            policy,
            canned_policy(&format!("https://{DOMAIN}/*/01JABC/*"), EXPIRES),
            "the wildcard names the image's directory under any prefix"
        );
        let signature = STANDARD
            .decode(from_url_safe(&field("Signature")))
            .expect("base64");
        let verifying = VerifyingKey::<Sha1>::new(key().to_public_key());
        let signature = Signature::try_from(signature.as_slice()).expect("signature");
        assert!(verifying.verify(policy.as_bytes(), &signature).is_ok());
        assert!(signer.image_query("01J/ABC", EXPIRES).is_err());
        assert!(signer.image_query("", EXPIRES).is_err());
        assert_eq!(
            signer.url("thumbnails/01JABC/256.webp").expect("url"),
            format!("https://{DOMAIN}/thumbnails/01JABC/256.webp")
        );
    }

    #[test]
    fn the_canned_policy_is_byte_for_byte_what_aws_documents() {
        assert_eq!(
            canned_policy(
                "https://d111111abcdef8.cloudfront.net/image.jpg",
                1_357_034_400
            ),
            r#"{"Statement":[{"Resource":"https://d111111abcdef8.cloudfront.net/image.jpg","Condition":{"DateLessThan":{"AWS:EpochTime":1357034400}}}]}"#
        );
    }

    #[test]
    fn the_same_inputs_give_the_same_url_and_another_expiry_another_one() {
        let signer = signer();
        let a = signer
            .signed_url("thumbnails/01JABC/256.webp", EXPIRES)
            .expect("signs");
        let b = signer
            .signed_url("thumbnails/01JABC/256.webp", EXPIRES)
            .expect("signs");
        assert_eq!(a, b);
        // A second signer over the same key (another cold start) agrees too.
        let c = CloudFrontSigner::from_pem(DOMAIN, KEY_ID, &pkcs8_pem())
            .expect("signer")
            .signed_url("thumbnails/01JABC/256.webp", EXPIRES)
            .expect("signs");
        assert_eq!(a, c);
        let later = signer
            .signed_url("thumbnails/01JABC/256.webp", EXPIRES + 3600)
            .expect("signs");
        assert_ne!(a, later);
    }

    #[test]
    fn unusual_key_characters_are_percent_encoded_in_the_url_and_the_signed_policy_alike() {
        let key = "originals/auth0|abc/été photo+1?#%&=.jpg";
        let (resource, expires, signature, _) = signed_parts(key);
        assert_eq!(
            resource,
            format!(
                "https://{DOMAIN}/originals/auth0%7Cabc/%C3%A9t%C3%A9%20photo%2B1%3F%23%25%26%3D.jpg"
            )
        );
        assert!(verifies(&resource, &expires, &signature));
        // Nothing a browser would re-encode or read as a delimiter is left in the path.
        let path = resource.trim_start_matches(&format!("https://{DOMAIN}"));
        assert!(
            path.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-._~%".contains(c)),
            "{path}"
        );
    }

    #[test]
    fn a_callers_query_is_signed_as_part_of_the_resource() {
        let url = signer()
            .signed_url_with_query(
                "originals/u-1/01JABC",
                &[("versionId", "3/L4kqtJl+cQ=")],
                EXPIRES,
            )
            .expect("signs");
        let (resource, expires, signature, _) = parts(&url);
        assert_eq!(
            resource,
            format!("https://{DOMAIN}/originals/u-1/01JABC?versionId=3%2FL4kqtJl%2BcQ%3D")
        );
        assert!(url.contains("%3D&Expires="), "{url}");
        assert!(verifies(&resource, &expires, &signature));
    }

    #[test]
    fn cloudfronts_own_query_names_are_refused() {
        let err = signer()
            .signed_url_with_query("thumbnails/a/b.webp", &[("Expires", "1")], EXPIRES)
            .expect_err("reserved");
        assert!(
            matches!(err, DeliveryError::ReservedQuery(ref n) if n == "Expires"),
            "{err}"
        );
    }

    #[test]
    fn keys_no_url_path_can_name_and_past_epoch_expiries_are_refused() {
        let signer = signer();
        for key in [
            "",
            "/thumbnails/a.webp",
            "thumbnails//a.webp",
            "thumbnails/../a",
            "./a",
            "a/",
        ] {
            assert!(
                matches!(signer.signed_url(key, EXPIRES), Err(DeliveryError::Path(_))),
                "{key:?}"
            );
        }
        assert!(matches!(
            signer.signed_url("a/b", 0),
            Err(DeliveryError::Expiry(0))
        ));
    }

    #[test]
    fn a_pkcs1_pem_signs_like_its_pkcs8_form() {
        let pkcs1 = key().to_pkcs1_pem(LineEnding::LF).expect("encodes");
        let from_pkcs1 = CloudFrontSigner::from_pem(DOMAIN, KEY_ID, &pkcs1).expect("signer");
        assert_eq!(
            from_pkcs1
                .signed_url("thumbnails/a/b.webp", EXPIRES)
                .expect("signs"),
            signer()
                .signed_url("thumbnails/a/b.webp", EXPIRES)
                .expect("signs")
        );
    }

    #[test]
    fn bad_domains_key_ids_and_keys_are_refused_without_showing_the_key() {
        let pem = pkcs8_pem();
        for domain in [
            "",
            "https://d1.cloudfront.net",
            "d1.cloudfront.net/",
            "d1.cloudfront.net:443",
            ".x",
        ] {
            assert!(
                matches!(
                    CloudFrontSigner::from_pem(domain, KEY_ID, &pem),
                    Err(DeliveryError::Domain(_))
                ),
                "{domain:?}"
            );
        }
        for id in ["", "K2 J", "K2J&x=1"] {
            assert!(
                matches!(
                    CloudFrontSigner::from_pem(DOMAIN, id, &pem),
                    Err(DeliveryError::KeyPairId(_))
                ),
                "{id:?}"
            );
        }
        let truncated = &pem[..pem.len() / 2];
        let err = CloudFrontSigner::from_pem(DOMAIN, KEY_ID, truncated).expect_err("not a key");
        assert!(matches!(err, DeliveryError::Pkcs8(_)), "{err}");
        assert!(
            std::error::Error::source(&err).is_some(),
            "keeps its source"
        );
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains(&pem[40..80]),
            "an error shows no key material"
        );
        let debug = format!("{:?}", signer());
        assert!(
            debug.contains(KEY_ID) && !debug.contains(&pem[40..80]),
            "{debug}"
        );
    }

    #[test]
    fn a_key_of_another_size_is_refused() {
        let small = PrivateKey::new(&mut getrandom::SysRng, 1024).expect("a 1024-bit key");
        let pem = small.to_pkcs8_pem(LineEnding::LF).expect("encodes");
        let err = CloudFrontSigner::from_pem(DOMAIN, KEY_ID, &pem).expect_err("too small");
        assert!(
            matches!(err, DeliveryError::KeySize { bits: 1024 }),
            "{err}"
        );
    }

    /// A one-request HTTP server answering `status` and `body`; returns its URL and the
    /// request it received.
    fn one_answer(status: &str, body: String) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let status = status.to_owned();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("a request");
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = stream.read(&mut buf).expect("reads");
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(reply.as_bytes()).expect("answers");
            String::from_utf8_lossy(&request).into_owned()
        });
        (url, handle)
    }

    fn sdk(endpoint: &str) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::new(
                        "AKIDTEST", "secret", None, None, "test",
                    ),
                ),
            )
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build()
    }

    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:safelight/delivery-signing-key/x-AbCdEf";

    #[tokio::test]
    async fn load_reads_the_pem_from_the_secret_it_is_given() {
        let body = serde_json::json!({"ARN": SECRET, "Name": "x", "SecretString": pkcs8_pem()})
            .to_string();
        let (url, server) = one_answer("200 OK", body);
        let signer = CloudFrontSigner::load(&sdk(&url), DOMAIN, KEY_ID, SECRET)
            .await
            .expect("loads");
        let request = server.join().expect("server");
        assert!(
            request
                .to_ascii_lowercase()
                .contains("x-amz-target: secretsmanager.getsecretvalue"),
            "{request}"
        );
        assert!(
            request.ends_with(&serde_json::json!({"SecretId": SECRET}).to_string()),
            "{request}"
        );
        let url = signer
            .signed_url("thumbnails/a/b.webp", EXPIRES)
            .expect("signs");
        let (resource, expires, signature, _) = parts(&url);
        assert!(verifies(&resource, &expires, &signature));
    }

    #[tokio::test]
    async fn a_refused_read_keeps_its_cause_and_a_binary_secret_is_named() {
        let body = serde_json::json!({"__type": "AccessDeniedException", "message": "not allowed"})
            .to_string();
        let (url, server) = one_answer("400 Bad Request", body);
        let err = CloudFrontSigner::load(&sdk(&url), DOMAIN, KEY_ID, SECRET)
            .await
            .expect_err("refused");
        server.join().expect("server");
        let DeliveryError::Secret(source) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            source.as_service_error().and_then(|e| e.code()),
            Some("AccessDeniedException")
        );

        let body =
            serde_json::json!({"ARN": SECRET, "Name": "x", "SecretBinary": "AAEC"}).to_string();
        let (url, server) = one_answer("200 OK", body);
        let err = CloudFrontSigner::load(&sdk(&url), DOMAIN, KEY_ID, SECRET)
            .await
            .expect_err("binary");
        server.join().expect("server");
        assert!(matches!(err, DeliveryError::SecretNotAString), "{err}");
    }
}
