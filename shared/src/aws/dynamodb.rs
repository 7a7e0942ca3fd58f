//! The DynamoDB adapter for the images table: `ImageRepository` with conditional writes on
//! `version` (optimistic locking), owner listing through the `by_owner` index, and counts and
//! pages by status through the `by_status` index.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::faults::Faults;
use crate::domain::{ImageId, ImageRecord, OwnerId, Status, Timestamp};
use crate::ops::backfill::LegacyRow;
use crate::ports::{BackfillRows, ImageRepository, Page, RepoError, StatusIndex, StoredRow};

/// The images table.
#[derive(Debug, Clone)]
pub struct DynamoImages {
    client: Client,
    table: String,
    faults: Faults,
}

impl DynamoImages {
    /// A repository on `table`.
    pub fn new(config: &SdkConfig, table: impl Into<String>, faults: Faults) -> Self {
        DynamoImages {
            client: Client::new(config),
            table: table.into(),
            faults,
        }
    }
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> RepoError {
    RepoError::Unavailable(Box::new(e))
}

/// Reads an item as a record.
pub fn record_from_item(item: HashMap<String, AttributeValue>) -> Result<ImageRecord, RepoError> {
    serde_dynamo::from_item(item).map_err(|e| RepoError::Malformed(e.to_string()))
}

/// Writes a record as an item.
pub fn item_from_record(
    record: &ImageRecord,
) -> Result<HashMap<String, AttributeValue>, RepoError> {
    serde_dynamo::to_item(record).map_err(|e| RepoError::Malformed(e.to_string()))
}

/// The listing cursor: the last row's sort position. The owner comes from the caller's identity,
/// never from the cursor, so a cursor cannot reach another owner's rows.
#[derive(Serialize, Deserialize)]
struct Cursor {
    image_id: ImageId,
    created_at: Timestamp,
}

fn encode_cursor(key: &HashMap<String, AttributeValue>) -> Option<String> {
    let text = |name: &str| key.get(name).and_then(|v| v.as_s().ok()).cloned();
    let cursor = Cursor {
        image_id: text("image_id")?.parse().ok()?,
        created_at: text("created_at")?.parse().ok()?,
    };
    serde_json::to_vec(&cursor)
        .ok()
        .map(|json| B64URL.encode(json))
}

fn decode_cursor(
    owner: &OwnerId,
    cursor: &str,
) -> Result<HashMap<String, AttributeValue>, RepoError> {
    let json = B64URL.decode(cursor).map_err(|_| RepoError::BadCursor)?;
    let cursor: Cursor = serde_json::from_slice(&json).map_err(|_| RepoError::BadCursor)?;
    Ok(HashMap::from([
        (
            "image_id".to_owned(),
            AttributeValue::S(cursor.image_id.to_string()),
        ),
        (
            "created_at".to_owned(),
            AttributeValue::S(cursor.created_at.to_string()),
        ),
        ("owner_id".to_owned(), AttributeValue::S(owner.to_string())),
    ]))
}

impl ImageRepository for DynamoImages {
    async fn create(&self, record: &ImageRecord) -> Result<(), RepoError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_from_record(record)?))
            .condition_expression("attribute_not_exists(image_id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Err(RepoError::Conflict)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn get(&self, id: ImageId) -> Result<Option<ImageRecord>, RepoError> {
        self.faults.check("ddb_get").map_err(unavailable)?;
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("image_id", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.map(record_from_item).transpose()
    }

    async fn list_by_owner(
        &self,
        owner: &OwnerId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<ImageRecord>, RepoError> {
        let start = cursor.map(|c| decode_cursor(owner, c)).transpose()?;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("by_owner")
            .key_condition_expression("owner_id = :owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(SdkError::ServiceError(e))
                if e.err().meta().code() == Some("ValidationException") =>
            {
                return Err(RepoError::BadCursor)
            }
            Err(e) => return Err(unavailable(e)),
        };
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(record_from_item)
            .collect::<Result<_, _>>()?;
        let next = out.last_evaluated_key.as_ref().and_then(encode_cursor);
        Ok(Page { items, next })
    }

    async fn update(&self, record: &mut ImageRecord) -> Result<(), RepoError> {
        self.faults.check("ddb_update").map_err(unavailable)?;
        let expected = record.version;
        let mut next = record.clone();
        next.version = expected + 1;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_from_record(&next)?))
            .condition_expression("#v = :expected")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => {
                record.version = next.version;
                Ok(())
            }
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Err(RepoError::Conflict)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete(&self, id: ImageId) -> Result<(), RepoError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("image_id", AttributeValue::S(id.to_string()))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// The `by_status` index's cursor: the last row's sort position. The status comes from the
/// caller, so a cursor cannot move a page to another partition.
#[derive(Serialize, Deserialize)]
struct StatusCursor {
    image_id: ImageId,
    updated_at: Timestamp,
}

fn encode_status_cursor(key: &HashMap<String, AttributeValue>) -> Option<String> {
    let text = |name: &str| key.get(name).and_then(|v| v.as_s().ok()).cloned();
    let cursor = StatusCursor {
        image_id: text("image_id")?.parse().ok()?,
        updated_at: text("updated_at")?.parse().ok()?,
    };
    serde_json::to_vec(&cursor)
        .ok()
        .map(|json| B64URL.encode(json))
}

fn decode_status_cursor(
    status: Status,
    cursor: &str,
) -> Result<HashMap<String, AttributeValue>, RepoError> {
    let json = B64URL.decode(cursor).map_err(|_| RepoError::BadCursor)?;
    let cursor: StatusCursor = serde_json::from_slice(&json).map_err(|_| RepoError::BadCursor)?;
    Ok(HashMap::from([
        (
            "image_id".to_owned(),
            AttributeValue::S(cursor.image_id.to_string()),
        ),
        (
            "updated_at".to_owned(),
            AttributeValue::S(cursor.updated_at.to_string()),
        ),
        (
            "processing_status".to_owned(),
            AttributeValue::S(status.as_str().to_owned()),
        ),
    ]))
}

/// The `by_status` index.
const BY_STATUS: &str = "by_status";

impl StatusIndex for DynamoImages {
    async fn count_by_status(&self, status: Status) -> Result<u64, RepoError> {
        let mut total = 0_u64;
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_STATUS)
                .key_condition_expression("processing_status = :s")
                .expression_attribute_values(":s", AttributeValue::S(status.as_str().to_owned()))
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            total += u64::try_from(out.count).unwrap_or(0);
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(total),
            }
        }
    }

    async fn page_by_status(
        &self,
        status: Status,
        oldest_first: bool,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<ImageRecord>, RepoError> {
        let start = cursor
            .map(|c| decode_status_cursor(status, c))
            .transpose()?;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_STATUS)
            .key_condition_expression("processing_status = :s")
            .expression_attribute_values(":s", AttributeValue::S(status.as_str().to_owned()))
            .scan_index_forward(oldest_first)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(SdkError::ServiceError(e))
                if e.err().meta().code() == Some("ValidationException") =>
            {
                return Err(RepoError::BadCursor)
            }
            Err(e) => return Err(unavailable(e)),
        };
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(record_from_item)
            .collect::<Result<_, _>>()?;
        let next = out
            .last_evaluated_key
            .as_ref()
            .and_then(encode_status_cursor);
        Ok(Page { items, next })
    }
}

impl BackfillRows for DynamoImages {
    async fn read_row(&self, id: ImageId) -> Result<Option<StoredRow>, RepoError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("image_id", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        if item.contains_key("version") {
            if let Ok(record) = record_from_item(item.clone()) {
                return Ok(Some(StoredRow::Current(Box::new(record))));
            }
        }
        let legacy: LegacyRow =
            serde_dynamo::from_item(item).map_err(|e| RepoError::Malformed(e.to_string()))?;
        Ok(Some(StoredRow::Legacy(legacy)))
    }

    async fn replace_legacy(&self, record: &ImageRecord) -> Result<(), RepoError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_from_record(record)?))
            .condition_expression("attribute_exists(image_id) AND attribute_not_exists(#v)")
            .expression_attribute_names("#v", "version")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Err(RepoError::Conflict)
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ContentType, NewImage, UploadState};

    #[test]
    fn a_record_survives_the_trip_through_a_dynamodb_item() {
        let record = ImageRecord::new(
            NewImage {
                image_id: ImageId::new(),
                owner_id: "u1".parse().unwrap(),
                filename: None,
                content_type: ContentType::Png,
                byte_size: 42,
                sha256: None,
                upload_state: UploadState::AwaitingUpload,
            },
            Timestamp::now(),
        );
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
    fn a_cursor_cannot_carry_another_owner() {
        let id = ImageId::new();
        let key = HashMap::from([
            ("image_id".to_owned(), AttributeValue::S(id.to_string())),
            (
                "created_at".to_owned(),
                AttributeValue::S(Timestamp::now().to_string()),
            ),
            ("owner_id".to_owned(), AttributeValue::S("victim".into())),
        ]);
        let cursor = encode_cursor(&key).unwrap();
        let me: OwnerId = "me".parse().unwrap();
        let start = decode_cursor(&me, &cursor).unwrap();
        assert_eq!(start["owner_id"], AttributeValue::S("me".into()));
        assert!(matches!(
            decode_cursor(&me, "garbage!"),
            Err(RepoError::BadCursor)
        ));
    }
}
