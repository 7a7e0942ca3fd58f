//! The S3 adapter: `ObjectStore` over aws-sdk-s3 with presigned PUTs, presigned POST forms
//! ([`post_policy`], which the SDK does not make) and presigned GETs (`Downloads`); the
//! backfill's listing of originals is in [`originals`].

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use crate::domain::{LinkWindow, ObjectKey, Timestamp};
use crate::ports::{
    ObjectMeta, ObjectRef, ObjectStore, PresignedPost, PresignedRequest, StoreError, StoredObject,
    UploadConstraints,
};
use post_policy::PostPolicy;

mod originals;
mod post_policy;

/// `ObjectStore` on one S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    config: SdkConfig,
    bucket: String,
}

impl S3Store {
    /// A store for `bucket`. With an endpoint override (the local emulator) requests use path
    /// style, which every S3-compatible endpoint understands.
    pub fn new(config: &SdkConfig, bucket: impl Into<String>) -> Self {
        let mut builder = aws_sdk_s3::config::Builder::from(config);
        if config.endpoint_url().is_some() {
            builder = builder.force_path_style(true);
        }
        S3Store {
            client: Client::from_conf(builder.build()),
            config: config.clone(),
            bucket: bucket.into(),
        }
    }

    /// A GET of `key` (at `version`, else the current one).
    fn get_object(&self, key: &ObjectKey, version: Option<&str>) -> GetObjectFluentBuilder {
        self.client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_version_id(version.map(str::to_owned))
    }

    /// The form action for POST uploads.
    fn post_url(&self) -> String {
        match self.config.endpoint_url() {
            Some(endpoint) => format!("{}/{}", endpoint.trim_end_matches('/'), self.bucket),
            None => {
                let region = self.config.region().map_or("us-east-1", |r| r.as_ref());
                format!("https://{}.s3.{region}.amazonaws.com", self.bucket)
            }
        }
    }
}

pub(super) fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// An SDK call's failure: a refusal (see [`super::is_refusal`]) or unavailable.
pub(super) fn sdk_failure<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: super::ServiceError,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    super::sdk_failure_as(e, StoreError::Refused, StoreError::Unavailable)
}

fn presigning(expires_in: Duration) -> Result<PresigningConfig, StoreError> {
    PresigningConfig::expires_in(expires_in).map_err(unavailable)
}

fn expiry(expires_in: Duration) -> Timestamp {
    Timestamp::now().plus_secs(i64::try_from(expires_in.as_secs()).unwrap_or(i64::MAX))
}

impl ObjectStore for S3Store {
    async fn put(
        &self,
        key: &ObjectKey,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .set_cache_control(key.cache_control().map(str::to_owned))
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(sdk_failure)?;
        Ok(())
    }

    async fn get(&self, object: ObjectRef<'_>) -> Result<StoredObject, StoreError> {
        let (key, version) = (object.key, object.version);
        // A GET naming a version needs `s3:GetObjectVersion` on AWS (the template grants it).
        let out = self.get_object(key, version).send().await;
        let out = match out {
            Ok(out) => out,
            Err(SdkError::ServiceError(e))
                if e.err().is_no_such_key() || e.err().code() == Some("NoSuchVersion") =>
            {
                return Err(StoreError::NotFound(match version {
                    Some(v) => format!("{key} (version {v})"),
                    None => key.to_string(),
                }))
            }
            Err(e) => return Err(unavailable(e)),
        };
        let version = out.version_id().map(str::to_owned);
        let bytes = out.body.collect().await.map_err(unavailable)?;
        Ok(StoredObject {
            bytes: bytes.into_bytes().to_vec(),
            version,
        })
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectMeta {
                size: u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0),
                content_type: out.content_type().map(str::to_owned),
                version: out.version_id().map(str::to_owned),
            })),
            Err(SdkError::ServiceError(e))
                if e.err().is_not_found() || e.err().code() == Some("NotFound") =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_failure(e)),
        }
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(sdk_failure)?;
        Ok(())
    }

    async fn delete_version(&self, key: &ObjectKey, version: &str) -> Result<(), StoreError> {
        // Deleting a version for good (no delete marker) needs `s3:DeleteObjectVersion`.
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .version_id(version)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(e.err().code(), Some("NoSuchVersion" | "NoSuchKey")) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_failure(e)),
        }
    }

    async fn presign_put(
        &self,
        key: &ObjectKey,
        constraints: &UploadConstraints,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        let length = i64::try_from(constraints.content_length)
            .map_err(|_| StoreError::Unavailable("content length out of range".into()))?;
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(&constraints.content_type)
            .content_length(length)
            // Written once: S3 refuses (412) a PUT to a key that already holds an object, so the
            // URL cannot replace an original after (or while) it is processed.
            .if_none_match("*");
        if let Some(sum) = &constraints.sha256_base64 {
            request = request
                .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
                .checksum_sha256(sum);
        }
        let presigned = request
            .presigned(presigning(expires_in)?)
            .await
            .map_err(unavailable)?;
        let headers = presigned
            .headers()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("host"))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Ok(PresignedRequest {
            method: presigned.method().to_owned(),
            url: presigned.uri().to_owned(),
            headers,
            expires_at: expiry(expires_in),
        })
    }

    async fn presign_post(
        &self,
        key: &ObjectKey,
        constraints: &UploadConstraints,
        expires_in: Duration,
    ) -> Result<PresignedPost, StoreError> {
        use aws_credential_types::provider::ProvideCredentials;
        let provider = self
            .config
            .credentials_provider()
            .ok_or_else(|| StoreError::Unavailable("no AWS credentials configured".into()))?;
        let creds = provider.provide_credentials().await.map_err(unavailable)?;
        let region = self
            .config
            .region()
            .map_or("us-east-1", |r| r.as_ref())
            .to_owned();
        let policy = PostPolicy {
            bucket: &self.bucket,
            key: key.as_str(),
            constraints,
            region: &region,
            access_key_id: creds.access_key_id(),
            secret_access_key: creds.secret_access_key(),
            session_token: creds.session_token(),
            now: SystemTime::now(),
            expires_in,
        };
        Ok(PresignedPost {
            url: self.post_url(),
            fields: policy.fields(),
            expires_at: expiry(expires_in),
        })
    }
}

impl crate::ports::Downloads for S3Store {
    /// A presigned GET signed as of the window's start (`X-Amz-Date`) for its lifetime
    /// (`X-Amz-Expires`), so the URL is the same all window long (with the same credentials).
    async fn link(&self, object: ObjectRef<'_>, window: LinkWindow) -> Result<String, StoreError> {
        let (key, version) = (object.key, object.version);
        let signed_at = SystemTime::UNIX_EPOCH
            + Duration::from_millis(window.signed_at.unix_millis().max(0).unsigned_abs());
        let config = PresigningConfig::builder()
            .start_time(signed_at)
            .expires_in(window.lifetime)
            .build()
            .map_err(unavailable)?;
        let presigned = self
            .get_object(key, version)
            .presigned(config)
            .await
            .map_err(unavailable)?;
        Ok(presigned.uri().to_owned())
    }
}
