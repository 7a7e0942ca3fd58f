//! GIF, and the WebP originals libwebp does not decode (animations; the pure-Rust build), through
//! the `image` crate's decoders, held to the decode budget (`max_alloc`). An animation gives its
//! first frame, composited on the canvas.

use std::io::Cursor;

use super::{check_size, truncated_or_corrupt, Pixels};
use crate::probe::{format_name, Header};
use crate::{EngineError, Limits};

/// Decodes `bytes` as `format` (already probed as `header`) to RGB, or RGBA when it has alpha.
pub(super) fn decode(
    bytes: &[u8],
    format: image::ImageFormat,
    header: &Header,
    limits: &Limits,
) -> Result<Pixels, EngineError> {
    let name = format_name(header.content_type);
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_side);
    image_limits.max_image_height = Some(limits.max_side);
    // The budget itself: the canvas and any frame buffer the decoder allocates count against it
    // (the header estimate already counted them; this stops what the header did not announce).
    image_limits.max_alloc = Some(limits.max_decode_bytes);
    reader.limits(image_limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => EngineError::AllocLimit {
            budget_mib: limits.max_decode_bytes >> 20,
        },
        other => image_error(name, other),
    })?;
    let (width, height) = (img.width(), img.height());
    check_size(name, (width, height), header)?;
    if img.color().has_alpha() {
        Ok(Pixels::new(width, height, 4, img.into_rgba8().into_raw()))
    } else {
        Ok(Pixels::new(width, height, 3, img.into_rgb8().into_raw()))
    }
}

fn image_error(format: &'static str, e: image::ImageError) -> EngineError {
    use image::ImageError;
    match e {
        ImageError::Limits(_) => EngineError::MemoryLimit,
        ImageError::Unsupported(u) => {
            EngineError::Unsupported(format!("{format}: {u}").to_lowercase())
        }
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            EngineError::Truncated { format }
        }
        other => truncated_or_corrupt(format, other.to_string()),
    }
}
