//! What every DynamoDB adapter shares: a client on one table with its requests pre-addressed,
//! queries read page by page, batch reads, and the answers of conditional writes.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::builders::DeleteItemFluentBuilder;
use aws_sdk_dynamodb::operation::get_item::GetItemError;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::query::{QueryError, QueryOutput};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;

use crate::domain::OwnerId;
use crate::ports::RepoError;

/// A DynamoDB item (or key).
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The key `{name: value}` of a table whose key is one string attribute.
pub(crate) fn key(name: &str, value: impl Into<String>) -> Item {
    HashMap::from([(name.to_owned(), AttributeValue::S(value.into()))])
}

/// One DynamoDB table: its requests come addressed to it.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) client: Client,
    pub(crate) name: String,
}

impl Table {
    /// The table `name`.
    pub(crate) fn new(config: &SdkConfig, name: impl Into<String>) -> Self {
        Table {
            client: Client::new(config),
            name: name.into(),
        }
    }

    /// The item with `key` (a strongly consistent read), if there is one.
    pub(crate) async fn get(&self, key: Item) -> Result<Option<Item>, SdkError<GetItemError>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await?;
        Ok(out.item)
    }

    /// A `PutItem` on this table.
    pub(crate) fn put(&self) -> PutItemFluentBuilder {
        self.client.put_item().table_name(&self.name)
    }

    /// An `UpdateItem` of the item with `key`.
    pub(crate) fn update(&self, key: Item) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key))
    }

    /// A `DeleteItem` of the item with `key`.
    pub(crate) fn delete(&self, key: Item) -> DeleteItemFluentBuilder {
        self.client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(key))
    }

    /// A `Query` on this table.
    pub(crate) fn query(&self) -> QueryFluentBuilder {
        self.client.query().table_name(&self.name)
    }

    /// A `Query` of the `by_owner` index (partition key `owner_id`) under `key_condition`, which
    /// names the owner `:owner`.
    pub(crate) fn owner_query(&self, owner: &OwnerId, key_condition: &str) -> QueryFluentBuilder {
        self.query()
            .index_name("by_owner")
            .key_condition_expression(key_condition)
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
    }
}

/// A query read page by page, each page from the last one's `LastEvaluatedKey`.
pub(crate) struct Pages {
    query: QueryFluentBuilder,
    start: Option<Item>,
    done: bool,
}

impl Pages {
    /// `query`'s pages, from its first.
    pub(crate) fn new(query: QueryFluentBuilder) -> Self {
        Pages {
            query,
            start: None,
            done: false,
        }
    }

    /// The next page, `None` after the last.
    pub(crate) async fn next(&mut self) -> Result<Option<QueryOutput>, SdkError<QueryError>> {
        self.next_with(|query| query).await
    }

    /// The next page of the query as `adjust` changes it for this page (e.g. its `Limit`).
    pub(crate) async fn next_with(
        &mut self,
        adjust: impl FnOnce(QueryFluentBuilder) -> QueryFluentBuilder,
    ) -> Result<Option<QueryOutput>, SdkError<QueryError>> {
        if self.done {
            return Ok(None);
        }
        let mut page = adjust(self.query.clone())
            .set_exclusive_start_key(self.start.take())
            .send()
            .await?;
        match page.last_evaluated_key.take() {
            Some(key) if !key.is_empty() => self.start = Some(key),
            _ => self.done = true,
        }
        Ok(Some(page))
    }

    /// Whether the table has pages after those read.
    pub(crate) fn more(&self) -> bool {
        !self.done
    }
}

/// An SDK call's failure as the repositories' error: a refusal (see [`super::is_refusal`]) or
/// unavailable.
pub(crate) fn sdk_failure<E, R>(e: SdkError<E, R>) -> RepoError
where
    E: super::ServiceError,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    super::sdk_failure_as(e, RepoError::Refused, RepoError::Unavailable)
}

/// A conditional write's answer: `true` when written, `false` when its condition failed (the
/// write was refused, nothing changed), an error otherwise.
pub(crate) fn written<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, RepoError>
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

/// A conditional write whose failed condition means another writer got there first:
/// `Conflict`.
pub(crate) fn written_or_conflict<T, E, R>(
    result: Result<T, SdkError<E, R>>,
) -> Result<(), RepoError>
where
    E: super::ServiceError,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if written(result)? {
        Ok(())
    } else {
        Err(RepoError::Conflict)
    }
}

/// A conditional put's answer, when the put asked for the item that failed its condition
/// (`ReturnValuesOnConditionCheckFailure::AllOld`).
pub(crate) enum Put {
    /// Written.
    Written,
    /// Its condition failed: the item that made it fail, when the store returned it (a store
    /// may not, and the item may be gone).
    Refused(Option<Item>),
}

/// `result` as a [`Put`]; any failure other than the condition's goes through `fail`.
pub(crate) fn put_or_current<E>(
    result: Result<PutItemOutput, SdkError<PutItemError>>,
    fail: impl FnOnce(SdkError<PutItemError>) -> E,
) -> Result<Put, E> {
    match result {
        Ok(_) => Ok(Put::Written),
        Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
            Ok(Put::Refused(match e.err() {
                PutItemError::ConditionalCheckFailedException(refused) => {
                    refused.item().filter(|item| !item.is_empty()).cloned()
                }
                _ => None,
            }))
        }
        Err(e) => Err(fail(e)),
    }
}

/// The items of `table` whose key `key` (a string) is one of `keys`, absent ones left out, in
/// no particular order: `BatchGetItem`s of up to 100 keys, each asked again (after a short
/// backoff, a few times) for the keys DynamoDB hands back unprocessed; keys still unprocessed
/// after that are an `Unavailable` error, never a silently shorter answer.
pub(crate) async fn batch_get(
    table: &Table,
    key_name: &str,
    keys: &[String],
) -> Result<Vec<Item>, RepoError> {
    const MAX_KEYS: usize = 100;
    const TRIES: u32 = 5;
    let mut found = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(MAX_KEYS) {
        let mut wanted = KeysAndAttributes::builder();
        for k in chunk {
            wanted = wanted.keys(key(key_name, k.clone()));
        }
        let mut request = HashMap::from([(
            table.name.clone(),
            wanted
                .build()
                .map_err(|e| RepoError::malformed("a batch read request", e))?,
        )]);
        let mut tries = 0;
        loop {
            let out = table
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(sdk_failure)?;
            found.extend(
                out.responses
                    .unwrap_or_default()
                    .remove(&table.name)
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
