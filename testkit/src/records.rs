//! Image rows for tests: [`image`] starts a builder with the defaults most tests want (a new id, a
//! stored 1000-byte JPEG without file name or digest, created now), each test names only what it
//! is about. The builder lives in `safelight::testing` (so the shared crate's own unit tests use
//! it too); this is where the suites find it.

pub use safelight::testing::{image, image_of, ImageBuilder};
