//! Safelight's test kit: what the suites would otherwise each write again. A dev-dependency of
//! the crates whose tests use it (and a dependency of the `safelight-e2e` suites); never of a
//! function binary.
//!
//! - [`fixtures`]: real JPEG and PNG bytes, the sample events in `events/`.
//! - [`records`]: [`records::image`], a builder of image rows with the defaults tests assume.
//! - [`status`]: [`status::terminal`] and [`status::settled`], the waits' conditions on a
//!   processing-status answer.
//! - [`contract`]: the rules every implementation of a port keeps (the in-memory fakes and the AWS
//!   adapters alike), as functions generic over the port traits, and the macros that turn them
//!   into tests for one implementation.

// Test support: a panic is the failure report, with the message naming what was wrong.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod contract;
pub mod fixtures;
pub mod records;
pub mod status;

pub use fixtures::{corpus, event, jpeg, png};
pub use records::{image, ImageBuilder};
pub use status::{settled, terminal};
