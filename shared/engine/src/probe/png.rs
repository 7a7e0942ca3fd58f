//! PNG headers: `IHDR`, then the chunks before the image data.

use super::bytes::u32_be;
use super::exif::chunk_orientation;
use super::{zero_sized, Header};
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
    // Chunks: length(4) type(4) data(length) crc(4).
    // A cut before IDAT is left for the decoder to report: the header itself is complete.
    let mut pos = 8usize;
    let mut orientation = 1;
    // Colour types 4 (gray + alpha) and 6 (RGBA) have alpha; a tRNS chunk adds it to the others.
    let mut alpha = matches!(b.get(25), Some(4 | 6));
    while let (Some(len), Some(kind)) = (u32_be(b, pos), b.get(pos + 4..pos + 8)) {
        if kind == b"IDAT" || kind == b"IEND" {
            break;
        }
        alpha |= kind == b"tRNS";
        let len = len as usize;
        if kind == b"eXIf" {
            if let Some(data) = b.get(pos + 8..pos.saturating_add(8 + len)) {
                orientation = chunk_orientation(data);
            }
        }
        match pos.checked_add(12 + len) {
            Some(next) => pos = next,
            None => break,
        }
    }
    Ok(Header {
        orientation,
        decoded_channels: if alpha { 4 } else { 3 },
        ..Header::new(ContentType::Png, width, height)
    })
}
