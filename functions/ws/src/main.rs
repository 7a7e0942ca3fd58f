//! Lambda wiring for the `ws` function.
// The handler's futures behind the fault decorator (local builds) nest deeper than rustc's
// default layout depth of 128.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, Error, LambdaEvent};
use safelight::aws;
use safelight::aws::telemetry::Telemetry;
use safelight::Config;
use ws::token::KeyCachePolicy;
use ws::{HttpJwks, JwtVerifier, Ws};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = Telemetry::init()?;
    let config = Config::from_env()?;
    let faults = aws::FaultInjection::parse(config.faults.as_deref())?;
    let issuer = Config::require(&config.jwt_issuer, "JWT_ISSUER")?;
    let audience = Config::require(&config.jwt_audience, "JWT_AUDIENCE")?;
    let key_cache = KeyCachePolicy::from_env()?;
    let sdk = aws::load_sdk_config().await;
    let (connections, notices, poster) = aws::realtime_ports(&sdk, &config, &faults)?;
    let handler = Ws::new(
        connections,
        notices,
        poster,
        JwtVerifier::new(HttpJwks::new(issuer)?, issuer, audience).with_key_cache(key_cache),
    )
    .with_limits(config.owner_limits);
    let (handler, telemetry) = (&handler, &telemetry);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        let response = handler.handle(&event.payload).await;
        telemetry.flush(&event.context.request_id);
        Ok::<_, Error>(response)
    }))
    .await
}
