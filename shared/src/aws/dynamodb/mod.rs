//! The DynamoDB adapter for the images table: `ImageRepository` with conditional writes on
//! `version` (optimistic locking), owner listing through the `by_owner` index, and counts and
//! pages by status through the sparse, write-sharded `by_status_v2` index: every put derives
//! the row's `status_key` from its `processing_status` ([`crate::status_index`]), so no caller
//! sets it, and a completed row is written without one (it leaves the index).

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure, Select};

use crate::aws::table::{self, key, sdk_failure, written_or_conflict, Pages, Put, Table};
use crate::domain::{ImageId, ImageRecord};
use crate::ports::{ImageRepository, OwnerPage, Page, RepoError, Written};
use crate::status_index;
use cursor::{cursor_query, IndexCursor, OWNER_CURSOR};

mod awaiting;
mod backfill;
mod cursor;
mod status;

/// The images table.
#[derive(Debug, Clone)]
pub struct DynamoImages {
    table: Table,
}

impl DynamoImages {
    /// A repository on `table`.
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        DynamoImages {
            table: Table::new(config, table),
        }
    }

    /// The item of image `id`, if there is one (a strongly consistent read).
    async fn item(&self, id: ImageId) -> Result<Option<table::Item>, RepoError> {
        self.table
            .get(key("image_id", id.to_string()))
            .await
            .map_err(sdk_failure)
    }

    /// A put of `record` (as [`item_from_record`] writes it) under `condition`.
    fn put_record(
        &self,
        record: &ImageRecord,
        condition: &str,
    ) -> Result<PutItemFluentBuilder, RepoError> {
        Ok(self
            .table
            .put()
            .set_item(Some(item_from_record(record)?))
            .condition_expression(condition))
    }

    /// How many entries of `index` have `key = value`: `Select=COUNT` queries, page by page.
    async fn count_where(&self, index: &str, key: &str, value: String) -> Result<u64, RepoError> {
        let mut pages = Pages::new(
            self.table
                .query()
                .index_name(index)
                .key_condition_expression("#k = :k")
                .expression_attribute_names("#k", key)
                .expression_attribute_values(":k", AttributeValue::S(value))
                .select(Select::Count),
        );
        let mut total = 0_u64;
        while let Some(page) = pages.next().await.map_err(sdk_failure)? {
            total += u64::try_from(page.count).unwrap_or(0);
        }
        Ok(total)
    }
}

/// Reads an item as a record.
pub fn record_from_item(item: HashMap<String, AttributeValue>) -> Result<ImageRecord, RepoError> {
    serde_dynamo::from_item(item).map_err(|e| RepoError::malformed("an image record", e))
}

/// Writes a record as an item, with the `status_key` of `by_status_v2` derived from its status
/// (absent when it completed: a put replaces the whole item, so the key leaves with it).
pub fn item_from_record(
    record: &ImageRecord,
) -> Result<HashMap<String, AttributeValue>, RepoError> {
    let mut item: HashMap<String, AttributeValue> =
        serde_dynamo::to_item(record).map_err(|e| RepoError::malformed("an image record", e))?;
    if let Some(key) = status_index::status_key(record) {
        item.insert(STATUS_KEY.to_owned(), AttributeValue::S(key));
        // The index's sort key: a row written before `status_since` gets it now (its last
        // change), and keeps it until its status changes.
        item.entry(status_index::SORT_KEY.to_owned())
            .or_insert_with(|| AttributeValue::S(record.status_since().to_string()));
    }
    Ok(item)
}

/// `by_status_v2`'s partition key attribute.
pub const STATUS_KEY: &str = "status_key";

impl ImageRepository for DynamoImages {
    async fn create(&self, record: &ImageRecord) -> Result<(), RepoError> {
        let result = self
            .put_record(record, "attribute_not_exists(image_id)")?
            .send()
            .await;
        written_or_conflict(result)
    }

    async fn get(&self, id: ImageId) -> Result<Option<ImageRecord>, RepoError> {
        self.item(id).await?.map(record_from_item).transpose()
    }

    async fn list_by_owner(&self, page: OwnerPage<'_>) -> Result<Page<ImageRecord>, RepoError> {
        let owner = page.of;
        let start = page
            .cursor
            .map(|c| OWNER_CURSOR.decode(owner.to_string(), c))
            .transpose()?;
        let out = self
            .table
            .owner_query(owner, "owner_id = :owner")
            .scan_index_forward(false)
            .limit(i32::try_from(page.limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await;
        let out = cursor_query(out)?;
        OWNER_CURSOR.page(out)
    }

    async fn update(&self, record: &mut ImageRecord) -> Result<(), RepoError> {
        match self.update_or_current(record).await? {
            Written::Done => Ok(()),
            Written::Lost(_) => Err(RepoError::Conflict),
        }
    }

    async fn update_or_current(&self, record: &mut ImageRecord) -> Result<Written, RepoError> {
        let expected = record.version;
        let mut next = record.clone();
        next.version = expected + 1;
        let result = self
            .put_record(&next, "#v = :expected")?
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match table::put_or_current(result, sdk_failure)? {
            Put::Written => {
                record.version = next.version;
                Ok(Written::Done)
            }
            // The row that won, returned with the refusal: no read needed.
            Put::Refused(Some(current)) => {
                Ok(Written::Lost(Some(Box::new(record_from_item(current)?))))
            }
            // A store that does not return it (or the row is gone): read it.
            Put::Refused(None) => Ok(Written::Lost(
                self.get(record.image_id).await?.map(Box::new),
            )),
        }
    }

    async fn delete(&self, id: ImageId) -> Result<(), RepoError> {
        self.table
            .delete(key("image_id", id.to_string()))
            .send()
            .await
            .map_err(sdk_failure)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Stage, Status, Timestamp, UploadState};
    use crate::status_index::test_row as row;

    #[test]
    fn a_record_survives_the_trip_through_a_dynamodb_item() {
        let record = row(UploadState::AwaitingUpload, Timestamp::now());
        let item = item_from_record(&record).unwrap();
        assert_eq!(
            item["processing_status"],
            AttributeValue::S("pending".into())
        );
        assert_eq!(
            item["upload_state"],
            AttributeValue::S("awaiting_upload".into())
        );
        assert!(matches!(item["version"], AttributeValue::N(_)));
        assert!(
            !item.contains_key("processing_error"),
            "absent optionals are not written as NULL"
        );
        assert_eq!(record_from_item(item).unwrap(), record);
    }

    #[test]
    fn every_put_carries_the_status_key_of_its_status_and_a_completed_row_none() {
        let mut record = row(UploadState::AwaitingUpload, Timestamp::now());
        let n = status_index::shard(record.image_id);
        for status in [Status::Pending, Status::Processing, Status::Failed] {
            record.processing_status = status;
            let item = item_from_record(&record).unwrap();
            assert_eq!(
                item[STATUS_KEY],
                AttributeValue::S(format!("{}#{n}", status.as_str()))
            );
            assert_eq!(
                record_from_item(item).unwrap(),
                record,
                "read back without it"
            );
        }
        record.processing_status = Status::Completed;
        assert!(!item_from_record(&record).unwrap().contains_key(STATUS_KEY));
    }

    #[test]
    fn the_index_sort_key_moves_only_with_the_status_and_an_older_row_gets_it_at_its_next_put() {
        let t = |ms| Timestamp::from_unix_millis(ms);
        let mut record = row(UploadState::Stored, t(1_000));
        let since = |r: &ImageRecord| item_from_record(r).unwrap()[status_index::SORT_KEY].clone();
        assert_eq!(since(&record), AttributeValue::S(t(1_000).to_string()));
        record.begin(Stage::Thumbnail, t(2_000)).unwrap();
        assert_eq!(
            since(&record),
            AttributeValue::S(t(2_000).to_string()),
            "to processing"
        );
        record.begin(Stage::Variant, t(3_000)).unwrap();
        record
            .note_transient(Stage::Variant, "slow", t(4_000))
            .unwrap();
        assert_eq!(
            since(&record),
            AttributeValue::S(t(2_000).to_string()),
            "writes that keep the status keep the index entry"
        );
        // A row written before the field: its last change, kept by the writes after it.
        let mut older = record.clone();
        older.status_since = None;
        assert_eq!(since(&older), AttributeValue::S(t(4_000).to_string()));
        older
            .note_transient(Stage::Variant, "slower", t(5_000))
            .unwrap();
        assert_eq!(since(&older), AttributeValue::S(t(4_000).to_string()));
    }
}
