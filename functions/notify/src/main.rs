//! Lambda wiring for the `notify` function.

use lambda_runtime::{service_fn, tracing, Error, LambdaEvent};
use notify::{deadline_from_epoch_millis, Notify};
use safelight::aws::{self, ApiGwPoster, DynamoConnections, DynamoNotices, Faults};
use safelight::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let faults = Faults::parse(config.faults.as_deref())?;
    let connections_table = Config::require(&config.connections_table, "CONNECTIONS_TABLE")?;
    let notices_table = Config::require(&config.notices_table, "NOTICES_TABLE")?;
    let endpoint = Config::require(&config.websocket_endpoint, "WEBSOCKET_ENDPOINT")?;
    let sdk = aws::load_sdk_config().await;
    let handler = Notify::new(
        DynamoConnections::new(&sdk, connections_table, faults.clone()),
        DynamoNotices::new(&sdk, notices_table, faults.clone()),
        ApiGwPoster::new(&sdk, endpoint, faults),
    );
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        let deadline = deadline_from_epoch_millis(event.context.deadline);
        Ok::<_, Error>(handler.handle(&event.payload, deadline).await)
    }))
    .await
}
