//! `AwaitingUploads`: an owner's recent rows still waiting for their bytes, for the upload
//! rate limit.

use aws_sdk_dynamodb::types::AttributeValue;

use super::DynamoImages;
use crate::aws::table::{sdk_failure, Pages};
use crate::domain::{OwnerId, Timestamp};
use crate::ports::{AwaitingUploads, RepoError};

/// One bounded query of the `by_owner` index: the owner's rows created after `after` (at most
/// the presigned link's lifetime ago, so at most the upload rate times that lifetime), filtered
/// to `awaiting_upload`, projecting only `created_at`.
impl AwaitingUploads for DynamoImages {
    async fn awaiting_since(
        &self,
        owner: &OwnerId,
        after: Timestamp,
    ) -> Result<Vec<Timestamp>, RepoError> {
        let mut pages = Pages::new(
            self.table
                .owner_query(owner, "owner_id = :owner AND created_at > :after")
                .filter_expression("upload_state = :awaiting")
                .projection_expression("created_at")
                .expression_attribute_values(":after", AttributeValue::S(after.to_string()))
                .expression_attribute_values(
                    ":awaiting",
                    AttributeValue::S("awaiting_upload".into()),
                )
                .scan_index_forward(true),
        );
        let mut out = Vec::new();
        while let Some(page) = pages.next().await.map_err(sdk_failure)? {
            for item in page.items() {
                const WHAT: &str = "an awaiting upload's created_at";
                let at = item
                    .get("created_at")
                    .and_then(|v| v.as_s().ok())
                    .ok_or_else(|| RepoError::malformed(WHAT, "not a text attribute"))?
                    .parse::<Timestamp>()
                    .map_err(|e| RepoError::malformed(WHAT, e))?;
                out.push(at);
            }
        }
        Ok(out)
    }
}
