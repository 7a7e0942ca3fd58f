//! The DynamoDB adapter for the images table: `ImageRepository` with conditional writes on
//! `version` (optimistic locking), owner listing through the `by_owner` index, and counts and
//! pages by status through the sparse, write-sharded `by_status_v2` index: every put derives
//! the row's `status_key` from its `processing_status` ([`crate::status_index`]), so no caller
//! sets it, and a completed row is written without one (it leaves the index).

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::{QueryError, QueryOutput};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Select};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;

use crate::domain::LegacyRow;
use crate::domain::{ImageId, ImageRecord, OwnerId, Status, Timestamp};
use crate::ports::{
    AwaitingUploads, BackfillRows, ImageRepository, Page, RepoError, StatusIndex, StoredRow,
    Written,
};
use crate::status_index::{self, Entry, Position, ShardRead};

mod backfill;
mod status;

/// The images table.
#[derive(Debug, Clone)]
pub struct DynamoImages {
    client: Client,
    table: String,
}

impl DynamoImages {
    /// A repository on `table`.
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        DynamoImages {
            client: Client::new(config),
            table: table.into(),
        }
    }
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> RepoError {
    RepoError::Unavailable(Box::new(e))
}

/// An SDK call's failure: a refusal (see [`super::is_refusal`]) or unavailable.
pub(super) fn sdk_failure<E, R>(e: SdkError<E, R>) -> RepoError
where
    E: super::ServiceError,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    super::sdk_failure_as(e, RepoError::Refused, RepoError::Unavailable)
}

/// A conditional write's answer: `true` when written, `false` when its condition failed (the
/// write was refused, nothing changed), an error otherwise.
pub(super) fn written<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, RepoError>
where
    E: super::ServiceError,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e))
            if e.err().code() == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(sdk_failure(e)),
    }
}

/// The items of `table` whose key `key` (a string) is one of `keys`, absent ones left out, in
/// no particular order: `BatchGetItem`s of up to 100 keys, each asked again (after a short
/// backoff, a few times) for the keys DynamoDB hands back unprocessed; keys still unprocessed
/// after that are an `Unavailable` error, never a silently shorter answer.
pub(super) async fn batch_get(
    client: &Client,
    table: &str,
    key: &str,
    keys: &[String],
) -> Result<Vec<HashMap<String, AttributeValue>>, RepoError> {
    const MAX_KEYS: usize = 100;
    const TRIES: u32 = 5;
    let mut found = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(MAX_KEYS) {
        let mut wanted = KeysAndAttributes::builder();
        for k in chunk {
            wanted = wanted.keys(HashMap::from([(
                key.to_owned(),
                AttributeValue::S(k.clone()),
            )]));
        }
        let mut request = HashMap::from([(
            table.to_owned(),
            wanted
                .build()
                .map_err(|e| RepoError::malformed("a batch read request", e))?,
        )]);
        let mut tries = 0;
        loop {
            let out = client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(sdk_failure)?;
            found.extend(
                out.responses
                    .unwrap_or_default()
                    .remove(table)
                    .unwrap_or_default(),
            );
            match out.unprocessed_keys {
                Some(left) if !left.is_empty() => request = left,
                _ => break,
            }
            tries += 1;
            if tries == TRIES {
                return Err(RepoError::Unavailable(
                    "DynamoDB left keys of a BatchGetItem unprocessed after 5 tries".into(),
                ));
            }
            // Exponential backoff with full jitter, as AWS advises for unprocessed keys.
            let ceiling_ms = 50_f64 * f64::from(1_u32 << tries);
            let wait =
                std::time::Duration::from_millis((ceiling_ms * crate::retry::jitter()) as u64);
            tokio::time::sleep(wait).await;
        }
    }
    Ok(found)
}

/// A paged query's answer: a `ValidationException` means the start key the caller's cursor
/// named is not one of this index's (a forged or stale cursor), so `BadCursor`; any other
/// failure is the table's.
fn cursor_query<R>(
    out: Result<QueryOutput, SdkError<QueryError, R>>,
) -> Result<QueryOutput, RepoError>
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match out {
        Ok(out) => Ok(out),
        Err(SdkError::ServiceError(e)) if e.err().meta().code() == Some("ValidationException") => {
            Err(RepoError::BadCursor)
        }
        Err(e) => Err(unavailable(e)),
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

/// A page cursor of one of the table's indexes: the last row's `image_id` and its value of the
/// index's sort key, as base64url JSON (`{"image_id": .., "<sort key>": ..}`). The partition
/// key's value comes from the caller (the owner from the identity, the status from the route),
/// never from the cursor, so a cursor cannot move a page to another partition (another owner's
/// rows).
struct IndexCursor {
    /// The index's partition key.
    partition_key: &'static str,
    /// The index's sort key (a timestamp).
    sort_key: &'static str,
}

/// `by_owner`: an owner's gallery, newest first.
const OWNER_CURSOR: IndexCursor = IndexCursor {
    partition_key: "owner_id",
    sort_key: "created_at",
};

/// A query's items as image rows.
fn records(
    items: Option<Vec<HashMap<String, AttributeValue>>>,
) -> Result<Vec<ImageRecord>, RepoError> {
    items
        .unwrap_or_default()
        .into_iter()
        .map(record_from_item)
        .collect()
}

impl IndexCursor {
    /// A query's answer as a page of rows, with the cursor after it.
    fn page(
        &self,
        out: aws_sdk_dynamodb::operation::query::QueryOutput,
    ) -> Result<Page<ImageRecord>, RepoError> {
        let next = out.last_evaluated_key.as_ref().and_then(|k| self.encode(k));
        Ok(Page {
            items: records(out.items)?,
            next,
        })
    }

    /// The cursor after the page whose `LastEvaluatedKey` is `key`.
    fn encode(&self, key: &HashMap<String, AttributeValue>) -> Option<String> {
        let text = |name: &str| key.get(name).and_then(|v| v.as_s().ok());
        let image_id: ImageId = text("image_id")?.parse().ok()?;
        let at: Timestamp = text(self.sort_key)?.parse().ok()?;
        let json = serde_json::json!({"image_id": image_id, self.sort_key: at});
        serde_json::to_vec(&json)
            .ok()
            .map(|json| B64URL.encode(json))
    }

    /// The `ExclusiveStartKey` for `cursor` within the partition `partition`.
    fn decode(
        &self,
        partition: String,
        cursor: &str,
    ) -> Result<HashMap<String, AttributeValue>, RepoError> {
        let json = B64URL.decode(cursor).map_err(|_| RepoError::BadCursor)?;
        let fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&json).map_err(|_| RepoError::BadCursor)?;
        let text = |name: &str| fields.get(name).and_then(serde_json::Value::as_str);
        let image_id: ImageId = text("image_id")
            .and_then(|t| t.parse().ok())
            .ok_or(RepoError::BadCursor)?;
        let at: Timestamp = text(self.sort_key)
            .and_then(|t| t.parse().ok())
            .ok_or(RepoError::BadCursor)?;
        Ok(HashMap::from([
            (
                "image_id".to_owned(),
                AttributeValue::S(image_id.to_string()),
            ),
            (self.sort_key.to_owned(), AttributeValue::S(at.to_string())),
            (self.partition_key.to_owned(), AttributeValue::S(partition)),
        ]))
    }
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
            Err(e) => Err(sdk_failure(e)),
        }
    }

    async fn get(&self, id: ImageId) -> Result<Option<ImageRecord>, RepoError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("image_id", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_failure)?;
        out.item.map(record_from_item).transpose()
    }

    async fn list_by_owner(
        &self,
        owner: &OwnerId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<ImageRecord>, RepoError> {
        let start = cursor
            .map(|c| OWNER_CURSOR.decode(owner.to_string(), c))
            .transpose()?;
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
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_from_record(&next)?))
            .condition_expression("#v = :expected")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match result {
            Ok(_) => {
                record.version = next.version;
                Ok(Written::Done)
            }
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let returned = match e.err() {
                    PutItemError::ConditionalCheckFailedException(refused) => {
                        refused.item().filter(|item| !item.is_empty()).cloned()
                    }
                    _ => None,
                };
                match returned {
                    // The row that won, returned with the refusal: no read needed.
                    Some(current) => Ok(Written::Lost(Some(Box::new(record_from_item(current)?)))),
                    // A store that does not return it (or the row is gone): read it.
                    None => Ok(Written::Lost(
                        self.get(record.image_id).await?.map(Box::new),
                    )),
                }
            }
            Err(e) => Err(sdk_failure(e)),
        }
    }

    async fn delete(&self, id: ImageId) -> Result<(), RepoError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("image_id", AttributeValue::S(id.to_string()))
            .send()
            .await
            .map_err(sdk_failure)?;
        Ok(())
    }
}

impl DynamoImages {
    /// How many entries of `index` have `key = value`: `Select=COUNT` queries, page by page.
    async fn count_where(&self, index: &str, key: &str, value: String) -> Result<u64, RepoError> {
        let mut total = 0_u64;
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression("#k = :k")
                .expression_attribute_names("#k", key)
                .expression_attribute_values(":k", AttributeValue::S(value.clone()))
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_failure)?;
            total += u64::try_from(out.count).unwrap_or(0);
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(total),
            }
        }
    }
}

/// One bounded query of the `by_owner` index: the owner's rows created after `after` (at most
/// the presigned link's lifetime ago, so at most the upload rate times that lifetime), filtered
/// to `awaiting_upload`, projecting only `created_at`.
impl AwaitingUploads for DynamoImages {
    async fn awaiting_since(
        &self,
        owner: &OwnerId,
        after: Timestamp,
    ) -> Result<Vec<Timestamp>, RepoError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("by_owner")
                .key_condition_expression("owner_id = :owner AND created_at > :after")
                .filter_expression("upload_state = :awaiting")
                .projection_expression("created_at")
                .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
                .expression_attribute_values(":after", AttributeValue::S(after.to_string()))
                .expression_attribute_values(
                    ":awaiting",
                    AttributeValue::S("awaiting_upload".into()),
                )
                .scan_index_forward(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_failure)?;
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
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ContentType, NewImage, Stage, UploadState};

    /// A fresh PNG row of owner `u1`.
    fn row(upload_state: UploadState, at: Timestamp) -> ImageRecord {
        ImageRecord::new(
            NewImage {
                image_id: ImageId::new(),
                owner_id: "u1".parse().unwrap(),
                filename: None,
                content_type: ContentType::Png,
                byte_size: 42,
                sha256: None,
                upload_state,
            },
            at,
        )
    }

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
        let cursor = OWNER_CURSOR.encode(&key).unwrap();
        let start = OWNER_CURSOR.decode("me".into(), &cursor).unwrap();
        assert_eq!(start["owner_id"], AttributeValue::S("me".into()));
        assert_eq!(start["image_id"], key["image_id"]);
        assert_eq!(start["created_at"], key["created_at"]);
        assert_eq!(start.len(), 3);
        assert!(matches!(
            OWNER_CURSOR.decode("me".into(), "garbage!"),
            Err(RepoError::BadCursor)
        ));
    }

    #[test]
    fn the_owner_cursor_keeps_its_wire_form() {
        let id = ImageId::new();
        let at = Timestamp::now();
        let old = B64URL.encode(format!(r#"{{"created_at":"{at}","image_id":"{id}"}}"#));
        let start = OWNER_CURSOR.decode("me".into(), &old).unwrap();
        assert_eq!(OWNER_CURSOR.encode(&start).as_deref(), Some(old.as_str()));
        let status = B64URL.encode(format!(r#"{{"image_id":"{id}","updated_at":"{at}"}}"#));
        assert!(
            matches!(
                OWNER_CURSOR.decode("me".into(), &status),
                Err(RepoError::BadCursor)
            ),
            "a status cursor has no created_at"
        );
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
