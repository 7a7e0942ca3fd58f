//! Walking the containers without decoding: JPEG marker segments, PNG chunks and RIFF (WebP)
//! chunks. [`probe`](mod@crate::probe) reads the header facts from them and [`icc`](crate::icc) the
//! embedded profile, over the same walk.

use crate::bytes::{u16_be, u32_be, u32_le};
use crate::EngineError;

/// Walks the marker segments of a JPEG from after SOI up to its first scan (SOS), handing each
/// to `segment` as `(marker, payload after the length field)`, and returns the offset of the
/// first scan header's length field. Stray bytes between segments (libjpeg tolerates them), fill
/// bytes and markers without a segment are skipped; the file ending, a marker not allowed here,
/// a length below 2 or an error from `segment` end the walk with that error.
pub(crate) fn jpeg_segments<'a>(
    b: &'a [u8],
    mut segment: impl FnMut(u8, &'a [u8]) -> Result<(), EngineError>,
) -> Result<usize, EngineError> {
    const F: &str = "jpeg";
    let truncated = EngineError::Truncated { format: F };
    let mut pos = 2;
    loop {
        // Skip anything up to the next marker, then fill bytes.
        while *b.get(pos).ok_or(truncated.clone())? != 0xFF {
            pos += 1;
        }
        while *b.get(pos).ok_or(truncated.clone())? == 0xFF {
            pos += 1;
        }
        let marker = b[pos];
        pos += 1;
        match marker {
            0x00 | 0x01 | 0xD0..=0xD8 => continue,
            0x02..=0xBF => return Err(EngineError::corrupt(F, "invalid marker in the header")),
            0xD9 => {
                return Err(EngineError::corrupt(
                    F,
                    "the file ends before any image data",
                ))
            }
            0xDA => return Ok(pos),
            _ => {}
        }
        let len = usize::from(u16_be(b, pos).ok_or(truncated.clone())?);
        if len < 2 {
            return Err(EngineError::corrupt(
                F,
                "a marker segment has an invalid length",
            ));
        }
        segment(marker, b.get(pos + 2..pos + len).ok_or(truncated.clone())?)?;
        pos += len;
    }
}

/// The chunks of a PNG from its first (`IHDR`): `(type, data)`, the data `None` where the file
/// ends inside it. Stops where a chunk header is cut or a length overflows.
pub(crate) fn png_chunks(b: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    // Chunks: length(4) type(4) data(length) crc(4).
    let mut pos = Some(8usize);
    std::iter::from_fn(move || {
        let at = pos?;
        let (Some(len), Some(kind)) = (u32_be(b, at), b.get(at + 4..at + 8)) else {
            pos = None;
            return None;
        };
        let len = len as usize;
        pos = at.checked_add(12 + len);
        Some((kind, b.get(at + 8..at.saturating_add(8 + len))))
    })
}

/// The chunks of a RIFF (WebP) file from its first (offset 12): `(fourcc, payload)`, the
/// payload `None` where the file ends inside it. Stops where a chunk header is cut or an offset
/// overflows.
pub(crate) fn riff_chunks(b: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    // Chunks: fourcc(4) size(4, little-endian) payload(size), padded to an even size.
    let mut pos = Some(12usize);
    std::iter::from_fn(move || {
        let at = pos?;
        let (Some(kind), Some(len)) = (b.get(at..at + 4), u32_le(b, at + 4)) else {
            pos = None;
            return None;
        };
        let len = len as usize;
        pos = at.checked_add(8 + len + (len & 1));
        Some((
            kind,
            at.checked_add(8 + len).and_then(|end| b.get(at + 8..end)),
        ))
    })
}
