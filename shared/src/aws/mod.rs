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
pub mod telemetry;

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

/// The adapters both live-notice functions (`ws`, `notify`) run on, from the configuration:
/// connections table, notices table and the WebSocket management endpoint.
pub fn realtime_ports(
    sdk: &aws_config::SdkConfig,
    config: &crate::config::Config,
    faults: &Faults,
) -> Result<(DynamoConnections, DynamoNotices, ApiGwPoster), crate::config::ConfigError> {
    use crate::config::Config;
    let connections = Config::require(&config.connections_table, "CONNECTIONS_TABLE")?;
    let notices = Config::require(&config.notices_table, "NOTICES_TABLE")?;
    let endpoint = Config::require(&config.websocket_endpoint, "WEBSOCKET_ENDPOINT")?;
    Ok((
        DynamoConnections::new(sdk, connections, faults.clone()),
        DynamoNotices::new(sdk, notices, faults.clone()),
        ApiGwPoster::new(sdk, endpoint, faults.clone()),
    ))
}
