//! The DynamoDB adapter for the owners' digest index, in `CONTROL_TABLE`: one item per (owner,
//! SHA-256 of the bytes), `digest#{owner}#{sha256}` -> `image_id`, written only with conditional
//! puts (absent, or still naming the image it replaces), so the index cannot be raced.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;

use super::table::{self, sdk_failure, written, Table};

use crate::domain::{ImageId, OwnerId, Timestamp};
use crate::ports::{DigestClaim, DigestIndex, RepoError};

/// The digest index in the control table.
#[derive(Debug, Clone)]
pub struct DynamoDigests {
    table: Table,
}

impl DynamoDigests {
    /// An adapter on `table` (the control table).
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        DynamoDigests {
            table: Table::new(config, table),
        }
    }

    /// Puts the claim for `to` under `condition`; `Ok(false)` when the condition failed.
    async fn put_if(
        &self,
        owner: &OwnerId,
        sha256: &str,
        to: ImageId,
        condition: &str,
        from: Option<ImageId>,
    ) -> Result<bool, RepoError> {
        let mut put = self
            .table
            .put()
            .item("pk", AttributeValue::S(digest_key(owner, sha256)))
            .item("image_id", AttributeValue::S(to.to_string()))
            .item(
                "claimed_at",
                AttributeValue::S(Timestamp::now().to_string()),
            )
            .condition_expression(condition);
        if let Some(from) = from {
            put = put.expression_attribute_values(":from", AttributeValue::S(from.to_string()));
        }
        written(put.send().await)
    }
}

/// The item's key: owner ids cannot contain `#`, digests are hex.
pub fn digest_key(owner: &OwnerId, sha256: &str) -> String {
    format!("digest#{owner}#{sha256}")
}

impl DigestIndex for DynamoDigests {
    async fn claim(&self, claim: &DigestClaim<'_>) -> Result<Option<ImageId>, RepoError> {
        let (owner, sha256) = (claim.owner, claim.sha256);
        if self
            .put_if(owner, sha256, claim.image, "attribute_not_exists(pk)", None)
            .await?
        {
            return Ok(None);
        }
        // Held: read who holds it (strongly, the claim may be a moment old).
        let item = self
            .table
            .get(table::key("pk", digest_key(owner, sha256)))
            .await
            .map_err(sdk_failure)?;
        let holder = item
            .as_ref()
            .and_then(|item| item.get("image_id"))
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| RepoError::malformed("a digest claim", "no image_id"))?;
        holder
            .parse()
            .map(Some)
            .map_err(|e| RepoError::malformed("a digest claim's image_id", e))
    }

    async fn reclaim(&self, claim: &DigestClaim<'_>, from: ImageId) -> Result<bool, RepoError> {
        let (owner, sha256, to) = (claim.owner, claim.sha256, claim.image);
        self.put_if(owner, sha256, to, "image_id = :from", Some(from))
            .await
    }
}
