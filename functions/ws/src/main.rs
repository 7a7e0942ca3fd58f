//! Lambda wiring for the `ws` function.

use lambda_runtime::{service_fn, tracing, Error, LambdaEvent};
use safelight::aws::{self, Faults};
use safelight::Config;
use ws::{HttpJwks, JwtVerifier, Ws};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let faults = Faults::parse(config.faults.as_deref())?;
    let issuer = Config::require(&config.jwt_issuer, "JWT_ISSUER")?;
    let audience = Config::require(&config.jwt_audience, "JWT_AUDIENCE")?;
    let sdk = aws::load_sdk_config().await;
    let (connections, notices, poster) = aws::realtime_ports(&sdk, &config, &faults)?;
    let handler = Ws::new(
        connections,
        notices,
        poster,
        JwtVerifier::new(HttpJwks::new(issuer)?, issuer, audience),
    );
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        Ok::<_, Error>(handler.handle(&event.payload).await)
    }))
    .await
}
