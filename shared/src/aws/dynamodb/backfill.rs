//! `BackfillRows`: the migration's reads and writes of the images table, through the old
//! `by_status` index while it exists.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{record_from_item, DynamoImages, IndexCursor, STATUS_KEY};
use crate::aws::table::{self, sdk_failure, written, written_or_conflict};
use crate::domain::{ImageId, ImageRecord, LegacyRow, Status};
use crate::ports::{BackfillRows, Page, PageRequest, RepoError, StoredRow};
use crate::status_index;

impl BackfillRows for DynamoImages {
    async fn read_row(&self, id: ImageId) -> Result<Option<StoredRow>, RepoError> {
        let Some(item) = self.item(id).await? else {
            return Ok(None);
        };
        if item.contains_key("version") {
            if let Ok(record) = record_from_item(item.clone()) {
                return Ok(Some(StoredRow::Current(Box::new(record))));
            }
        }
        let legacy: LegacyRow =
            serde_dynamo::from_item(item).map_err(|e| RepoError::malformed("a legacy row", e))?;
        Ok(Some(StoredRow::Legacy(legacy)))
    }

    async fn replace_legacy(&self, record: &ImageRecord) -> Result<(), RepoError> {
        let result = self
            .put_record(
                record,
                "attribute_exists(image_id) AND attribute_not_exists(#v)",
            )?
            .expression_attribute_names("#v", "version")
            .send()
            .await;
        written_or_conflict(result)
    }

    async fn page_unindexed(
        &self,
        page: PageRequest<'_, Status>,
    ) -> Result<Page<ImageRecord>, RepoError> {
        let (status, limit) = (page.of, page.limit);
        let start = page
            .cursor
            .map(|c| LEGACY_STATUS_CURSOR.decode(status.as_str().to_owned(), c))
            .transpose()?;
        let out = self
            .table
            .query()
            .index_name(LEGACY_BY_STATUS)
            .key_condition_expression("processing_status = :s")
            .filter_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", STATUS_KEY)
            .expression_attribute_values(":s", AttributeValue::S(status.as_str().to_owned()))
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            // The old index is gone (dropped by `KeepLegacyStatusIndex=false` once every row had
            // its key): nothing is left to index.
            Err(SdkError::ServiceError(e))
                if e.err().meta().code() == Some("ValidationException")
                    && e.err()
                        .meta()
                        .message()
                        .is_some_and(|m| m.contains("index")) =>
            {
                tracing::info!("the by_status index is gone: no rows left to index");
                return Ok(Page {
                    items: Vec::new(),
                    next: None,
                });
            }
            Err(e) => return Err(sdk_failure(e)),
        };
        LEGACY_STATUS_CURSOR.page(out)
    }

    async fn count_completed(&self) -> Result<u64, RepoError> {
        self.count_where(
            LEGACY_BY_STATUS,
            "processing_status",
            Status::Completed.as_str().to_owned(),
        )
        .await
    }

    async fn index_row(&self, record: &ImageRecord) -> Result<bool, RepoError> {
        let Some(key) = status_index::status_key(record) else {
            return Ok(false);
        };
        let result = self
            .table
            .update(table::key("image_id", record.image_id.to_string()))
            .update_expression("SET #k = :k, #s = if_not_exists(#s, :s)")
            .condition_expression("#v = :v AND attribute_not_exists(#k)")
            .expression_attribute_names("#k", STATUS_KEY)
            .expression_attribute_names("#s", status_index::SORT_KEY)
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":k", AttributeValue::S(key))
            .expression_attribute_values(":s", AttributeValue::S(record.status_since().to_string()))
            .expression_attribute_values(":v", AttributeValue::N(record.version.to_string()))
            .send()
            .await;
        written(result)
    }
}

/// The old `by_status` index (`processing_status`, `updated_at`), read only by the backfill to
/// find rows written before `by_status_v2`; dropped in the release after.
const LEGACY_BY_STATUS: &str = "by_status";

const LEGACY_STATUS_CURSOR: IndexCursor = IndexCursor {
    partition_key: "processing_status",
    sort_key: "updated_at",
};
