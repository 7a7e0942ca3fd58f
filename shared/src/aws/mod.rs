//! AWS adapters: one module per service, implementing the ports in `crate::ports`.

pub mod apigw_management;
pub mod cloudfront;
pub mod control;
pub mod delivery;
pub mod digests;
pub mod dynamodb;
pub mod faults;
pub mod http;
pub mod processor;
pub mod rates;
pub mod realtime;
pub mod runtime;
pub mod s3;
pub mod sqs;
pub mod stack_env;
mod table;
pub mod telemetry;

pub use apigw_management::ApiGwPoster;
pub use control::DynamoControl;
pub use delivery::Delivery;
pub use digests::DynamoDigests;
pub use dynamodb::DynamoImages;
pub use faults::{FaultInjection, FaultsError, MaybeFaulty};
pub use rates::DynamoRates;
pub use realtime::{DynamoConnections, DynamoNotices};
pub use s3::S3Store;
pub use sqs::SqsQueues;

/// Loads the SDK configuration from the environment (honours `AWS_ENDPOINT_URL`, which points
/// the SDKs at the local emulator). Call once at cold start.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_from_env().await
}

/// The connections table, the notices table and the WebSocket management API, as the live-notice
/// functions run them.
pub type RealtimePorts = (
    MaybeFaulty<DynamoConnections>,
    MaybeFaulty<DynamoNotices>,
    MaybeFaulty<ApiGwPoster>,
);

/// The adapters both live-notice functions (`ws`, `notify`) run on, from the configuration:
/// connections table, notices table and the WebSocket management endpoint.
pub fn realtime_ports(
    sdk: &aws_config::SdkConfig,
    config: &crate::config::Config,
    faults: &FaultInjection,
) -> Result<RealtimePorts, crate::config::ConfigError> {
    use crate::config::Config;
    let connections = Config::require(&config.connections_table, "CONNECTIONS_TABLE")?;
    let notices = Config::require(&config.notices_table, "NOTICES_TABLE")?;
    let endpoint = Config::require(&config.websocket_endpoint, "WEBSOCKET_ENDPOINT")?;
    Ok((
        faults.wrap(DynamoConnections::new(sdk, connections)),
        faults.wrap(DynamoNotices::new(sdk, notices)),
        faults.wrap(ApiGwPoster::new(sdk, endpoint)),
    ))
}

/// What an SDK operation's error must offer to be told apart as a refusal or an outage.
pub(crate) trait ServiceError:
    aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static
{
}

impl<T> ServiceError for T where
    T: aws_smithy_types::error::metadata::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static
{
}

/// An SDK call's failure as a port's error: `refused` for a refusal (see [`is_refusal`]), else
/// `unavailable`; the SDK error is kept as the source.
pub(crate) fn sdk_failure_as<E, R, T>(
    e: aws_sdk_s3::error::SdkError<E, R>,
    refused: fn(crate::ports::BoxError) -> T,
    unavailable: fn(crate::ports::BoxError) -> T,
) -> T
where
    E: ServiceError,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use aws_smithy_types::error::metadata::ProvideErrorMetadata as _;
    if is_refusal(e.code()) {
        refused(Box::new(e))
    } else {
        unavailable(Box::new(e))
    }
}

/// Whether an AWS error code is a refusal that retrying soon will not fix: access denied, an
/// unusable KMS key, a missing bucket or table. The pipeline retries these like any failure but
/// does not let them hold the circuit breaker open (they must surface as failed images, dead
/// letters and alarms, not as work deferred for ever). Throttling, 5xx and timeouts stay
/// transient; an expired token is refreshed by the SDK, so it is not a refusal.
pub(crate) fn is_refusal(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "AccessDenied"
                | "AccessDeniedException"
                | "AllAccessDisabled"
                | "InvalidAccessKeyId"
                | "NoSuchBucket"
                | "ResourceNotFoundException"
                | "UnrecognizedClientException"
                | "KMS.DisabledException"
                | "KMS.KMSInvalidStateException"
                | "KMS.NotFoundException"
                | "KMS.AccessDeniedException"
                | "KMSAccessDeniedException"
                | "KMSDisabledException"
                | "KMSInvalidStateException"
                | "KMSNotFoundException"
        )
    )
}

#[cfg(test)]
mod refusal_tests {
    use super::is_refusal;

    #[test]
    fn access_and_key_problems_are_refusals_and_throttling_is_not() {
        assert!(is_refusal(Some("AccessDenied")));
        assert!(is_refusal(Some("KMS.DisabledException")));
        assert!(is_refusal(Some("ResourceNotFoundException")));
        assert!(!is_refusal(Some("SlowDown")));
        assert!(!is_refusal(Some("ProvisionedThroughputExceededException")));
        assert!(!is_refusal(Some("InternalError")));
        assert!(!is_refusal(None));
    }
}
