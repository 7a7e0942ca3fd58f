//! Hostile tokens: the classic JWT attacks, built from a genuine token's claims and the issuer's
//! published key (everything an attacker has), for the suites to prove they are refused.

use anyhow::{anyhow, Context, Result};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::Stack;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The claims of a token (not verified: this is the attacker's view).
pub fn claims_of(token: &str) -> Result<Value> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| anyhow!("not a JWT"))?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?)
}

/// A token with `"alg": "none"` and no signature (the header keeps the issuer's `kid`).
pub fn unsigned(claims: &Value, kid: &str) -> String {
    let header = json!({"alg": "none", "typ": "JWT", "kid": kid});
    format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// A token "signed" with HS256 using `secret` as the HMAC key: the key-confusion attack, where
/// the secret is the issuer's public key (which anyone can fetch).
pub fn hs256(claims: &Value, kid: &str, secret: &[u8]) -> Result<String> {
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).context("HMAC key")?;
    mac.update(input.as_bytes());
    Ok(format!("{input}.{}", b64(&mac.finalize().into_bytes())))
}

/// The issuer's published RSA key: its `kid` and its public key as PEM, in both common spellings
/// (SubjectPublicKeyInfo `PUBLIC KEY` and PKCS#1 `RSA PUBLIC KEY`).
#[derive(Debug, Clone)]
pub struct PublishedKey {
    /// The key id in the JWKS.
    pub kid: String,
    /// `-----BEGIN PUBLIC KEY-----` PEM.
    pub spki_pem: String,
    /// `-----BEGIN RSA PUBLIC KEY-----` PEM.
    pub pkcs1_pem: String,
}

impl Stack {
    /// Fetches the issuer's JWKS and returns its (first) key.
    pub async fn published_key(&self) -> Result<PublishedKey> {
        let url = format!(
            "{}/jwks.json",
            self.var("SAFELIGHT_ISSUER_URL")?.trim_end_matches('/')
        );
        let jwks: Value = self.http().get(&url).send().await?.json().await?;
        let key = &jwks["keys"][0];
        let field = |name: &str| -> Result<Vec<u8>> {
            let text = key[name]
                .as_str()
                .ok_or_else(|| anyhow!("JWKS key without {name}: {jwks}"))?;
            Ok(URL_SAFE_NO_PAD.decode(text)?)
        };
        let rsa = der_seq(&[der_uint(&field("n")?), der_uint(&field("e")?)]);
        // AlgorithmIdentifier rsaEncryption (1.2.840.113549.1.1.1) with NULL parameters.
        let algorithm = der_seq(&[
            vec![
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
            ],
            vec![0x05, 0x00],
        ]);
        let mut bits = vec![0x00];
        bits.extend_from_slice(&rsa);
        let spki = der_seq(&[algorithm, der(0x03, &bits)]);
        Ok(PublishedKey {
            kid: key["kid"].as_str().unwrap_or_default().to_owned(),
            spki_pem: pem("PUBLIC KEY", &spki),
            pkcs1_pem: pem("RSA PUBLIC KEY", &rsa),
        })
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn der_seq(items: &[Vec<u8>]) -> Vec<u8> {
    der(0x30, &items.concat())
}

/// A DER INTEGER of an unsigned big-endian number.
fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(&trimmed);
    der(0x02, &content)
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
