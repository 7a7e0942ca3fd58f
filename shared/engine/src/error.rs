//! The engine's one error type. Every variant is a permanent failure: the same bytes and specs
//! fail the same way on every attempt, so the pipeline marks the image failed and does not retry.

/// Why an image could not be probed or rendered. The `Display` text is lower case and meant for
/// end users (it becomes the row's `processing_error`); [`EngineError::code`] is for machines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The file has no bytes at all.
    #[error("the file is empty")]
    Empty,

    /// The magic bytes match none of the accepted image formats.
    #[error("the file is not a jpeg, png, webp, gif or avif image")]
    UnknownFormat,

    /// A recognised format, but a flavour of it this engine cannot decode.
    #[error("unsupported image: {0}")]
    Unsupported(String),

    /// The file ends before the image data does.
    #[error("the {format} file is truncated")]
    Truncated {
        /// Format name, lower case (`jpeg`, `png`…).
        format: &'static str,
    },

    /// The bytes are not a valid image of the format they claim.
    #[error("the {format} file is corrupt: {reason}")]
    Corrupt {
        /// Format name, lower case.
        format: &'static str,
        /// What the decoder said, for people.
        reason: String,
    },

    /// The header declares more pixels than the limits allow. Found before any pixel allocation.
    #[error("the image is too large: {width}x{height} is more than {max_pixels} pixels")]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The configured limit.
        max_pixels: u64,
    },

    /// The header declares a side longer than the limits allow. Found before any pixel allocation.
    #[error("the image is too large: {width}x{height} has a side longer than {max_side} px")]
    SideTooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The configured limit.
        max_side: u32,
    },

    /// Decoding would need more memory than this function may spend on one image, estimated from
    /// the header (dimensions, channels, bit depth). Found before any pixel allocation.
    #[error(
        "the image is too large: decoding {width}x{height} needs about {needed_mib} MiB, more than \
         the {budget_mib} MiB one image may use here"
    )]
    DecodeBudget {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Estimated peak of the decode, MiB (rounded up).
        needed_mib: u64,
        /// The budget ([`Limits::max_decode_bytes`](super::Limits)), MiB.
        budget_mib: u64,
    },

    /// A frame the decoder allocates at its own size (a GIF frame larger than, or placed off,
    /// its canvas; an AVIF grid tile or alpha plane) would take the decode past the budget.
    /// Found from the headers, before any pixel allocation.
    #[error(
        "the image is too large: its {frame_width}x{frame_height} frame (on a {width}x{height} \
         canvas) needs about {needed_mib} MiB to decode, more than the {budget_mib} MiB one image \
         may use here"
    )]
    FrameBudget {
        /// Declared canvas width.
        width: u32,
        /// Declared canvas height.
        height: u32,
        /// Declared frame width.
        frame_width: u32,
        /// Declared frame height.
        frame_height: u32,
        /// Estimated peak of the decode, MiB (rounded up).
        needed_mib: u64,
        /// The budget ([`Limits::max_decode_bytes`](super::Limits)), MiB.
        budget_mib: u64,
    },

    /// The file's metadata (a PNG's ICC profile, EXIF and other kept chunks, inflated) needs more
    /// than the fixed allowance for metadata. Found before any pixel allocation.
    #[error(
        "the image is too large: its {format} metadata (ICC profile, EXIF) inflates past the \
         {limit_mib} MiB allowed for metadata"
    )]
    MetadataLimit {
        /// Format name, lower case.
        format: &'static str,
        /// The allowance, MiB.
        limit_mib: u64,
    },

    /// A decoder's own allocation limit, set to the decode budget, stopped it: an allocation the
    /// headers did not announce.
    #[error(
        "the image is too large: its decoder needs more than the {budget_mib} MiB one image may \
         use here"
    )]
    AllocLimit {
        /// The budget ([`Limits::max_decode_bytes`](super::Limits)), MiB.
        budget_mib: u64,
    },

    /// A size computation overflowed: the image cannot be held in memory at all.
    #[error("the image needs more memory to decode than allowed")]
    MemoryLimit,

    /// An output spec cannot be produced (edge 0, quality outside 1-100, format not built in).
    #[error("invalid output spec: {0}")]
    InvalidSpec(String),

    /// An encoder refused the pixels (e.g. a WebP side over 16383 px).
    #[error("could not encode the {format} output: {reason}")]
    Encode {
        /// Output format name.
        format: &'static str,
        /// What the encoder said.
        reason: String,
    },
}

impl EngineError {
    /// A stable machine-readable code: `empty`, `unsupported`, `truncated`, `corrupt`,
    /// `too_large`, `invalid_spec` or `encode_failed`.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Empty => "empty",
            EngineError::UnknownFormat | EngineError::Unsupported(_) => "unsupported",
            EngineError::Truncated { .. } => "truncated",
            EngineError::Corrupt { .. } => "corrupt",
            EngineError::TooManyPixels { .. }
            | EngineError::SideTooLarge { .. }
            | EngineError::DecodeBudget { .. }
            | EngineError::FrameBudget { .. }
            | EngineError::MetadataLimit { .. }
            | EngineError::AllocLimit { .. }
            | EngineError::MemoryLimit => "too_large",
            EngineError::InvalidSpec(_) => "invalid_spec",
            EngineError::Encode { .. } => "encode_failed",
        }
    }

    /// Always `true`: no engine failure goes away by retrying the same input.
    pub fn is_permanent(&self) -> bool {
        true
    }

    pub(crate) fn corrupt(format: &'static str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        let reason = lower_first(reason.trim());
        EngineError::Corrupt { format, reason }
    }
}

/// Codec messages often start with a capital ("Premature end of JPEG file"): keep ours lower case.
fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "unknown error".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_static<T: Send + Sync + 'static>() {}

    #[test]
    fn engine_errors_cross_threads_and_read_in_lower_case() {
        assert_send_sync_static::<EngineError>();
        let e = EngineError::corrupt("jpeg", "Bogus Huffman table definition");
        assert_eq!(
            e.to_string(),
            "the jpeg file is corrupt: bogus Huffman table definition"
        );
        assert_eq!(e.code(), "corrupt");
        let big = EngineError::TooManyPixels {
            width: 100_000,
            height: 100_000,
            max_pixels: 100_000_000,
        };
        assert_eq!(big.code(), "too_large");
        assert!(big.to_string().starts_with("the image is too large"));
        assert!(big.is_permanent());
    }
}
