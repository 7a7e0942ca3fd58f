//! The anchor of the release figures (`make report`): a lambda_runtime function that does
//! nothing but echo its event, built with the same profile and target as the real functions, so
//! their cold start and handler time read as ratios to the bare runtime's.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
