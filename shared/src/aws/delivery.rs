//! Where the browser downloads from: CloudFront signed URLs when the stack has a distribution
//! (`Config::delivery`), else S3 presigned GETs. Both sign for the request's link window, so a
//! URL stays the same all window long.

use super::cloudfront::{CloudFrontSigner, DeliveryError};
use super::s3::S3Store;
use crate::config::CdnDelivery;
use crate::domain::{LinkWindow, ObjectKey};
use crate::ports::{Downloads, StoreError};

/// The download links of one deployment.
#[derive(Debug)]
pub enum Delivery {
    /// S3 presigned GETs (the local stack, or a deployment without the distribution).
    S3(Box<S3Store>),
    /// CloudFront signed URLs (canned policy) on the distribution's domain.
    CloudFront(CloudFrontSigner),
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
            Some(cdn) => Delivery::CloudFront(
                CloudFrontSigner::load(
                    sdk,
                    &cdn.domain,
                    &cdn.key_pair_id,
                    &cdn.private_key_secret_arn,
                )
                .await?,
            ),
            None => Delivery::S3(Box::new(s3)),
        })
    }
}

impl Downloads for Delivery {
    async fn link(
        &self,
        key: &ObjectKey,
        version: Option<&str>,
        window: LinkWindow,
    ) -> Result<String, StoreError> {
        match self {
            Delivery::S3(s3) => s3.link(key, version, window).await,
            Delivery::CloudFront(signer) => {
                let expires = window.expires_at().unix_seconds();
                let query: Vec<(&str, &str)> =
                    version.map(|v| ("versionId", v)).into_iter().collect();
                signer
                    .signed_url_with_query(key.as_str(), &query, expires)
                    .map_err(|e| StoreError::Unavailable(Box::new(e)))
            }
        }
    }
}
