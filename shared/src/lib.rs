//! Safelight's library crate: the domain (ids, status machine, notices), the image engine, the
//! retry policy and circuit-breaker rules, configuration, and one adapter module per AWS service.

pub mod domain;
pub mod engine;

pub use domain::{ContentType, UnsupportedContentType};
