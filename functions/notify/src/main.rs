//! Lambda wiring for the `notify` function.
// The handler's futures behind the fault decorator (local builds) nest deeper than rustc's
// default layout depth of 128.
#![recursion_limit = "256"]

use lambda_runtime::{Error, LambdaEvent};
use notify::{deadline_from_epoch_millis, Notify};
use safelight::aws::{self, runtime, DynamoControl};
use safelight::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (telemetry, config, faults, sdk) = runtime::start().await?;
    let (connections, notices, poster) = aws::realtime_ports(&sdk, &config, &faults)?;
    let control = Config::require(&config.control_table, "CONTROL_TABLE")?;
    let throughput = faults.wrap(DynamoControl::new(&sdk, control));
    let handler = Notify::new(connections, notices, poster, throughput);
    let handler = &handler;
    runtime::run(&telemetry, move |event: LambdaEvent<_>| async move {
        let deadline = deadline_from_epoch_millis(event.context.deadline);
        Ok(handler.handle(&event.payload, deadline).await)
    })
    .await
}
