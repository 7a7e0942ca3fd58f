//! Where the browser downloads from: CloudFront signed URLs when the stack has a distribution
//! (`Config::delivery`), else S3 presigned GETs. Both sign for the request's link window, so a
//! URL stays the same all window long.
//!
//! On CloudFront one RSA signature (~2.7 ms of CPU) covers all of an image's derivatives (a
//! custom policy on `*/{image_id}/*`), kept for the window: a list page of 100 images costs at
//! most 100 signatures, not one per derivative (7 each), and a warm function's repeat views none.
//! An original (named by its version) gets its own canned-policy URL.

use std::collections::HashMap;
use std::sync::Mutex;

use super::cloudfront::{CloudFrontSigner, DeliveryError};
use super::s3::S3Store;
use crate::config::CdnDelivery;
use crate::domain::{LinkWindow, ObjectKey};
use crate::ports::{Downloads, ObjectRef, StoreError};

/// The download links of one deployment.
#[derive(Debug)]
pub enum Delivery {
    /// S3 presigned GETs (the local stack, or a deployment without the distribution).
    S3(Box<S3Store>),
    /// CloudFront signed URLs on the distribution's domain.
    CloudFront(Cdn),
}

/// The CloudFront signer and the image signatures of the current window.
#[derive(Debug)]
pub struct Cdn {
    signer: CloudFrontSigner,
    /// (the window's expiry, image directory -> its signed query); replaced when the window moves.
    signed: Mutex<(i64, HashMap<String, String>)>,
}

/// The most image signatures kept for one window (a bound on memory, ~0.5 KiB each).
const MAX_KEPT: usize = 20_000;

impl Cdn {
    /// A signer with nothing signed yet.
    pub fn new(signer: CloudFrontSigner) -> Self {
        Cdn {
            signer,
            signed: Mutex::new((0, HashMap::new())),
        }
    }

    fn link(
        &self,
        key: &ObjectKey,
        version: Option<&str>,
        expires: i64,
    ) -> Result<String, DeliveryError> {
        let image_dir = key.derivative_of().filter(|_| version.is_none());
        let Some(image_dir) = image_dir else {
            let query: Vec<(&str, &str)> = version.map(|v| ("versionId", v)).into_iter().collect();
            return self
                .signer
                .signed_url_with_query(key.as_str(), &query, expires);
        };
        let url = self.signer.url(key.as_str())?;
        let mut signed = self.signed.lock().unwrap_or_else(|p| p.into_inner());
        if signed.0 != expires || signed.1.len() >= MAX_KEPT {
            *signed = (expires, HashMap::new());
        }
        if let Some(query) = signed.1.get(image_dir) {
            return Ok(format!("{url}?{query}"));
        }
        let query = self.signer.image_query(image_dir, expires)?;
        signed.1.insert(image_dir.to_owned(), query.clone());
        Ok(format!("{url}?{query}"))
    }
}

impl Delivery {
    /// CloudFront when `cdn` is configured (its key read from Secrets Manager once, at cold
    /// start), else `s3`.
    pub async fn new(
        sdk: &aws_config::SdkConfig,
        cdn: Option<&CdnDelivery>,
        s3: S3Store,
    ) -> Result<Self, DeliveryError> {
        Ok(match cdn {
            Some(cdn) => Delivery::CloudFront(Cdn::new(
                CloudFrontSigner::load(
                    sdk,
                    &cdn.domain,
                    &cdn.key_pair_id,
                    &cdn.private_key_secret_arn,
                )
                .await?,
            )),
            None => Delivery::S3(Box::new(s3)),
        })
    }
}

impl Downloads for Delivery {
    async fn link(&self, object: ObjectRef<'_>, window: LinkWindow) -> Result<String, StoreError> {
        match self {
            Delivery::S3(s3) => s3.link(object, window).await,
            Delivery::CloudFront(cdn) => cdn
                .link(
                    object.key,
                    object.version,
                    window.expires_at().unix_seconds(),
                )
                .map_err(|e| StoreError::Unavailable(Box::new(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ImageId;

    fn cdn() -> Cdn {
        let key = rsa::PrivateKey::new(
            &mut getrandom::SysRng,
            super::super::cloudfront::KEY_BITS as usize,
        )
        .expect("a key");
        use rsa::pkcs8::EncodePrivateKey as _;
        let pem = key
            .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
            .expect("pem")
            .to_string();
        Cdn::new(
            CloudFrontSigner::from_pem("d1.cloudfront.net", "K2JCJMDEHXQW5F", &pem)
                .expect("signer"),
        )
    }

    #[test]
    fn an_images_derivatives_share_one_signature_and_its_original_has_its_own() {
        let cdn = cdn();
        let id = ImageId::new();
        let expires = 2_000_000_000;
        let thumb = cdn
            .link(&ObjectKey::thumbnail(id, "256", "webp"), None, expires)
            .expect("link");
        let variant = cdn
            .link(&ObjectKey::variant(id, "display", "jpg"), None, expires)
            .expect("link");
        let query = |u: &str| u.split_once('?').map(|(_, q)| q.to_owned()).expect("query");
        assert!(thumb.starts_with(&format!(
            "https://d1.cloudfront.net/thumbnails/{id}/256.webp?Policy="
        )));
        assert_eq!(
            query(&thumb),
            query(&variant),
            "one signature for the image"
        );
        let other = cdn
            .link(
                &ObjectKey::thumbnail(ImageId::new(), "256", "webp"),
                None,
                expires,
            )
            .expect("link");
        assert_ne!(query(&other), query(&thumb));
        let later = cdn
            .link(
                &ObjectKey::thumbnail(id, "256", "webp"),
                None,
                expires + 3600,
            )
            .expect("link");
        assert_ne!(
            query(&later),
            query(&thumb),
            "a new window, a new signature"
        );
        let owner = "u1".parse().expect("owner");
        let original = cdn
            .link(&ObjectKey::original(&owner, id), Some("v1"), expires)
            .expect("link");
        assert!(original.contains("?versionId=v1&Expires="), "{original}");
    }
}
