//! AWS adapters: one module per service, implementing the ports in `crate::ports`.

pub mod apigw_http;
pub mod apigw_management;
pub mod control;
pub mod dynamodb;
pub mod faults;
pub mod processor;
pub mod realtime;
pub mod s3;
pub mod sqs;

pub use apigw_management::ApiGwPoster;
pub use control::DynamoControl;
pub use dynamodb::DynamoImages;
pub use faults::Faults;
pub use realtime::{DynamoConnections, DynamoNotices};
pub use s3::S3Store;
pub use sqs::SqsQueues;

/// Loads the SDK configuration from the environment (honours `AWS_ENDPOINT_URL`, which points
/// the SDKs at the local emulator). Call once at cold start.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_from_env().await
}
