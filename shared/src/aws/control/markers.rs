//! `MarkerStore` in the control table: the migrations' run-once markers (`migration#{name}`,
//! conditional puts on `version`) and the completed total's seed.

use aws_sdk_dynamodb::types::AttributeValue;

use super::throughput::{number, COMPLETED_SEED};
use super::DynamoControl;
use crate::aws::table::written;
use crate::domain::Marker;
use crate::ports::{MarkerStore, RepoError};

/// A migration marker's key.
fn marker_key(name: &str) -> String {
    format!("migration#{name}")
}

impl MarkerStore for DynamoControl {
    async fn completed_counted(&self) -> Result<Option<u64>, RepoError> {
        let found = self.completed_items().await?;
        if found.contains_key(COMPLETED_SEED) {
            return Ok(None);
        }
        Ok(Some(found.values().map(|item| number(item, "n")).sum()))
    }

    async fn seed_completed(&self, seed: i64) -> Result<bool, RepoError> {
        let result = self
            .table
            .put()
            .item("pk", AttributeValue::S(COMPLETED_SEED.to_owned()))
            .item("n", AttributeValue::N(seed.to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        written(result)
    }

    async fn load_marker(&self, name: &str) -> Result<Option<(Marker, u64)>, RepoError> {
        self.load_versioned(marker_key(name), "a migration marker")
            .await
    }

    async fn save_marker(
        &self,
        name: &str,
        marker: &Marker,
        expected_version: u64,
    ) -> Result<(), RepoError> {
        self.save_versioned(
            marker_key(name),
            marker,
            expected_version,
            "a migration marker",
        )
        .await
    }
}
