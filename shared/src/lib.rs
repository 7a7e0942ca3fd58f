//! Safelight's library crate: the domain (ids, status machine, notices), the processing pipeline,
//! the operations, the retry policy and circuit-breaker rules, configuration, and one adapter
//! module per AWS service. The image engine is its own crate, re-exported as [`engine`].

pub mod api;
pub mod breaker;
pub mod config;
pub mod domain;
pub mod events;
pub mod limits;
pub mod metrics;
pub mod ops;
pub mod ports;
pub mod processing;
pub mod retry;
pub mod status_index;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "faults")]
pub mod faults;

#[cfg(feature = "testing")]
pub mod determinism;
#[cfg(feature = "testing")]
pub mod testing;

/// The image engine, its own crate (`safelight-engine`): bytes in, bytes out.
pub use safelight_engine as engine;

pub use api::ApiError;
pub use config::{Config, ConfigError, ProcessingConfig};
pub use domain::*;
/// The sweep's former path (it lives beside the other operations).
pub use ops::sweep;
pub use ops::OpsSettings;
