//! Lambda wiring for the `ws` function.
// The handler's futures behind the fault decorator (local builds) nest deeper than rustc's
// default layout depth of 128.
#![recursion_limit = "256"]

use lambda_runtime::{Error, LambdaEvent};
use safelight::aws::{self, runtime};
use safelight::Config;
use ws::token::KeyCachePolicy;
use ws::{HttpJwks, JwtVerifier, Ws};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (telemetry, config, faults, sdk) = runtime::start().await?;
    let issuer = Config::require(&config.jwt_issuer, "JWT_ISSUER")?;
    let audience = Config::require(&config.jwt_audience, "JWT_AUDIENCE")?;
    let key_cache = KeyCachePolicy::from_env()?;
    let (connections, notices, poster) = aws::realtime_ports(&sdk, &config, &faults)?;
    let handler = Ws::new(
        connections,
        notices,
        poster,
        JwtVerifier::new(HttpJwks::new(issuer)?, issuer, audience).with_key_cache(key_cache),
    )
    .with_limits(config.owner_limits);
    let handler = &handler;
    runtime::run(&telemetry, move |event: LambdaEvent<_>| async move {
        Ok(handler.handle(&event.payload).await)
    })
    .await
}
