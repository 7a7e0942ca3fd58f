//! The API Gateway Management API adapter (`ConnectionPoster`): `PostToConnection` to a
//! WebSocket connection. `410 Gone` (the client left without `$disconnect` reaching us, or the
//! 2 h limit closed it) is an outcome, not an error: the caller forgets the connection.
//!
//! The endpoint is configuration (`WEBSOCKET_ENDPOINT`): on AWS
//! `https://{api}.execute-api.{region}.amazonaws.com/{stage}`, locally the emulator's path-style
//! `{AWS_ENDPOINT_URL}/_aws/execute-api/{api}/{stage}`; the event's `domainName` cannot be used
//! because locally it carries no port.

use aws_config::SdkConfig;
use aws_sdk_apigatewaymanagement::error::SdkError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::Client;

use crate::ports::{ConnectionPoster, PostOutcome, RealtimeError};

/// Posts frames to WebSocket connections of one API stage.
#[derive(Debug, Clone)]
pub struct ApiGwPoster {
    client: Client,
}

impl ApiGwPoster {
    /// A poster for the stage whose management endpoint is `endpoint`.
    pub fn new(config: &SdkConfig, endpoint: &str) -> Self {
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(config)
            .endpoint_url(endpoint.trim_end_matches('/'))
            .build();
        ApiGwPoster {
            client: Client::from_conf(conf),
        }
    }
}

impl ConnectionPoster for ApiGwPoster {
    async fn post(
        &self,
        connection_id: &str,
        payload: &[u8],
    ) -> Result<PostOutcome, RealtimeError> {
        let result = self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(payload))
            .send()
            .await;
        match result {
            Ok(_) => Ok(PostOutcome::Delivered),
            Err(SdkError::ServiceError(e)) if e.err().is_gone_exception() => Ok(PostOutcome::Gone),
            Err(e) => Err(RealtimeError::Unavailable(Box::new(e))),
        }
    }
}
