//! The domain: identifiers, content types, object keys and the status model. No AWS types here.

pub mod content_type;

pub use content_type::{ContentType, UnsupportedContentType};
