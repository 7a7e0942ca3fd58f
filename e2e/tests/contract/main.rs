//! The port contract (`testkit::contract`) against the AWS adapters on the emulator: the same
//! rules the in-memory fakes are held to (`testkit/tests/contract.rs`), so a fake cannot keep a
//! rule the table does not, nor the other way round.
//!
//! The images, notices and control rows live in the deployed stack's tables (every rule uses new
//! ids and owners); the breaker rules get a control table of their own, since a stage has one
//! breaker row.

#![allow(clippy::expect_used)] // tests: a panic is the failure report

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use safelight::aws::{DynamoControl, DynamoDigests, DynamoImages, DynamoNotices, DynamoRates};
use safelight_e2e::Stack;

async fn stack() -> Stack {
    Stack::load().await.expect("the stack env file")
}

/// An adapter on the stack's table named by `var`.
async fn on<T>(var: &str, adapter: fn(&aws_config::SdkConfig, String) -> T) -> T {
    let stack = stack().await;
    adapter(
        &stack.sdk,
        stack.var(var).expect("table variable").to_owned(),
    )
}

/// The control adapter on a new, empty control table.
async fn fresh_control() -> DynamoControl {
    let stack = stack().await;
    let name = format!(
        "contract-control-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    stack
        .dynamodb()
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .send()
        .await
        .expect("creating the control table");
    DynamoControl::new(&stack.sdk, name)
}

mod images {
    use super::*;
    testkit::image_repository_contract!(on("SAFELIGHT_IMAGES_TABLE", DynamoImages::new).await);
}

mod breaker {
    use super::*;
    testkit::breaker_contract!(fresh_control().await);
}

mod leases {
    use super::*;
    testkit::lease_contract!(on("SAFELIGHT_CONTROL_TABLE", DynamoControl::new).await);
}

mod digests {
    use super::*;
    testkit::digest_index_contract!(on("SAFELIGHT_CONTROL_TABLE", DynamoDigests::new).await);
}

mod notices {
    use super::*;
    testkit::notice_log_contract!(on("SAFELIGHT_NOTICES_TABLE", DynamoNotices::new).await);
}

mod rates {
    use super::*;
    testkit::rate_counter_contract!(on("SAFELIGHT_CONTROL_TABLE", DynamoRates::new).await);
}
