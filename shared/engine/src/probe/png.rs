//! PNG headers: `IHDR`, then the chunks before the image data.

use super::exif::chunk_orientation;
use super::{zero_sized, Header};
use crate::bytes::u32_be;
use crate::chunks::png_chunks;
use crate::{ContentType, EngineError};

/// PNG: IHDR, then the chunks before the first IDAT for an `eXIf` orientation.
pub(super) fn header(b: &[u8]) -> Result<Header, EngineError> {
    const F: &str = "png";
    let truncated = EngineError::Truncated { format: F };
    if b.get(12..16).ok_or(truncated.clone())? != b"IHDR" {
        return Err(EngineError::corrupt(F, "the first chunk is not IHDR"));
    }
    let width = u32_be(b, 16).ok_or(truncated.clone())?;
    let height = u32_be(b, 20).ok_or(truncated.clone())?;
    if width == 0 || height == 0 {
        return Err(zero_sized(F));
    }
    // A cut before IDAT is left for the decoder to report: the header itself is complete.
    let mut orientation = 1;
    // Colour types 4 (gray + alpha) and 6 (RGBA) have alpha; a tRNS chunk adds it to the others.
    let mut alpha = matches!(b.get(25), Some(4 | 6));
    for (kind, data) in png_chunks(b) {
        if kind == b"IDAT" || kind == b"IEND" {
            break;
        }
        alpha |= kind == b"tRNS";
        if let (b"eXIf", Some(data)) = (kind, data) {
            orientation = chunk_orientation(data);
        }
    }
    Ok(Header {
        orientation,
        decoded_channels: if alpha { 4 } else { 3 },
        ..Header::new(ContentType::Png, width, height)
    })
}
