//! WebP headers: the first chunk of the RIFF file, and an `EXIF` chunk of the extended format.

use super::exif::chunk_orientation;
use super::{zero_sized, Header};
use crate::bytes::{u16_le, u24_le, u32_le};
use crate::chunks::riff_chunks;
use crate::{ContentType, EngineError};

/// WebP: the first chunk gives the size (VP8, VP8L or VP8X canvas); an EXIF chunk may give the
/// orientation.
pub(super) fn header(b: &[u8]) -> Result<Header, EngineError> {
    const F: &str = "webp";
    let truncated = EngineError::Truncated { format: F };
    let kind = b.get(12..16).ok_or(truncated.clone())?;
    let (width, height, extended) = match kind {
        b"VP8 " => {
            if b.get(23..26).ok_or(truncated.clone())? != [0x9d, 0x01, 0x2a] {
                return Err(EngineError::corrupt(F, "bad VP8 start code"));
            }
            let w = u32::from(u16_le(b, 26).ok_or(truncated.clone())? & 0x3fff);
            let h = u32::from(u16_le(b, 28).ok_or(truncated.clone())? & 0x3fff);
            (w, h, false)
        }
        b"VP8L" => {
            if *b.get(20).ok_or(truncated.clone())? != 0x2f {
                return Err(EngineError::corrupt(F, "bad VP8L signature"));
            }
            let bits = u32_le(b, 21).ok_or(truncated.clone())?;
            ((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1, false)
        }
        b"VP8X" => {
            let w = u24_le(b, 24).ok_or(truncated.clone())? + 1;
            let h = u24_le(b, 27).ok_or(truncated.clone())? + 1;
            (w, h, true)
        }
        _ => return Err(EngineError::corrupt(F, "unknown first chunk")),
    };
    if width == 0 || height == 0 {
        return Err(zero_sized(F));
    }
    let orientation = if extended {
        riff_chunks(b)
            .find(|&(kind, _)| kind == b"EXIF")
            .and_then(|(_, data)| data)
            .map_or(1, chunk_orientation)
    } else {
        1
    };
    Ok(Header {
        orientation,
        // Lossy VP8 without VP8X has no alpha; anything else may.
        decoded_channels: if kind == b"VP8 " { 3 } else { 4 },
        ..Header::new(ContentType::Webp, width, height)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::probe::read_header;
    use crate::Limits;

    #[test]
    fn webp_headers_of_each_kind_give_their_size() {
        let mut vp8x = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
        vp8x.extend_from_slice(&[0x1f, 0x03, 0x00, 0xff, 0x00, 0x00]); // 800 x 256
        let h = read_header(&vp8x, &Limits::default()).unwrap();
        assert_eq!((h.width, h.height), (800, 256));
        let mut vp8l = b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f".to_vec();
        let bits: u32 = 99 | (49 << 14);
        vp8l.extend_from_slice(&bits.to_le_bytes());
        let h = read_header(&vp8l, &Limits::default()).unwrap();
        assert_eq!((h.width, h.height), (100, 50));
    }
}
