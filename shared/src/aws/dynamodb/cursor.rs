//! Page cursors of the images table's indexes: what a caller holds between pages, and the
//! query answers they come from.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::{QueryError, QueryOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;

use super::record_from_item;
use crate::aws::table::Item;
use crate::domain::{ImageId, ImageRecord, Timestamp};
use crate::ports::{Page, RepoError};

/// A paged query's answer: a `ValidationException` means the start key the caller's cursor
/// named is not one of this index's (a forged or stale cursor), so `BadCursor`; any other
/// failure is the table's.
pub(super) fn cursor_query<R>(
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
        Err(e) => Err(RepoError::Unavailable(Box::new(e))),
    }
}

/// A page cursor of one of the table's indexes: the last row's `image_id` and its value of the
/// index's sort key, as base64url JSON (`{"image_id": .., "<sort key>": ..}`). The partition
/// key's value comes from the caller (the owner from the identity, the status from the route),
/// never from the cursor, so a cursor cannot move a page to another partition (another owner's
/// rows).
pub(super) struct IndexCursor {
    /// The index's partition key.
    pub(super) partition_key: &'static str,
    /// The index's sort key (a timestamp).
    pub(super) sort_key: &'static str,
}

/// `by_owner`: an owner's gallery, newest first.
pub(super) const OWNER_CURSOR: IndexCursor = IndexCursor {
    partition_key: "owner_id",
    sort_key: "created_at",
};

/// A query's items as image rows.
fn records(items: Option<Vec<Item>>) -> Result<Vec<ImageRecord>, RepoError> {
    items
        .unwrap_or_default()
        .into_iter()
        .map(record_from_item)
        .collect()
}

impl IndexCursor {
    /// A query's answer as a page of rows, with the cursor after it.
    pub(super) fn page(&self, out: QueryOutput) -> Result<Page<ImageRecord>, RepoError> {
        let next = out.last_evaluated_key.as_ref().and_then(|k| self.encode(k));
        Ok(Page {
            items: records(out.items)?,
            next,
        })
    }

    /// The cursor after the page whose `LastEvaluatedKey` is `key`.
    pub(super) fn encode(&self, key: &Item) -> Option<String> {
        let text = |name: &str| key.get(name).and_then(|v| v.as_s().ok());
        let image_id: ImageId = text("image_id")?.parse().ok()?;
        let at: Timestamp = text(self.sort_key)?.parse().ok()?;
        let json = serde_json::json!({"image_id": image_id, self.sort_key: at});
        serde_json::to_vec(&json)
            .ok()
            .map(|json| B64URL.encode(json))
    }

    /// The `ExclusiveStartKey` for `cursor` within the partition `partition`.
    pub(super) fn decode(&self, partition: String, cursor: &str) -> Result<Item, RepoError> {
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
        Ok(Item::from([
            (
                "image_id".to_owned(),
                AttributeValue::S(image_id.to_string()),
            ),
            (self.sort_key.to_owned(), AttributeValue::S(at.to_string())),
            (self.partition_key.to_owned(), AttributeValue::S(partition)),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_cannot_carry_another_owner() {
        let id = ImageId::new();
        let key = Item::from([
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
}
