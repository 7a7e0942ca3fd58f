//! EXIF orientation from a TIFF-structured block (JPEG `APP1`, PNG `eXIf`, WebP `EXIF`).

use crate::bytes::{u16_be, u16_le, u32_be, u32_le};

/// The orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block, if valid (1-8).
pub(super) fn exif_orientation(tiff: &[u8]) -> Option<u8> {
    let le = match tiff.get(0..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let r16 = |at: usize| {
        if le {
            u16_le(tiff, at)
        } else {
            u16_be(tiff, at)
        }
    };
    let r32 = |at: usize| {
        if le {
            u32_le(tiff, at)
        } else {
            u32_be(tiff, at)
        }
    };
    if r16(2)? != 42 {
        return None;
    }
    let ifd = usize::try_from(r32(4)?).ok()?;
    let count = usize::from(r16(ifd)?);
    (0..count).find_map(|i| {
        let entry = ifd.checked_add(2 + 12 * i)?;
        // Tag 0x0112, type SHORT (3), count 1: the value sits in the first two bytes of the field.
        if r16(entry)? == 0x0112 && r16(entry + 2)? == 3 {
            let v = r16(entry + 8)?;
            u8::try_from(v).ok().filter(|v| (1..=8).contains(v))
        } else {
            None
        }
    })
}

/// The orientation of a PNG or WebP EXIF chunk (the `Exif\0\0` prefix optional), 1 when absent
/// or invalid.
pub(super) fn chunk_orientation(data: &[u8]) -> u8 {
    let tiff = data.strip_prefix(b"Exif\0\0").unwrap_or(data);
    exif_orientation(tiff).unwrap_or(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(super) mod tests {
    use super::*;

    /// A TIFF block whose IFD0 holds one entry, the orientation (also for the JPEG header tests).
    pub(in crate::probe) fn tiff(le: bool, orientation: u16) -> Vec<u8> {
        let mut t = Vec::new();
        type Writers = (fn(u16) -> [u8; 2], fn(u32) -> [u8; 4]);
        let (w16, w32): Writers = if le {
            (u16::to_le_bytes, u32::to_le_bytes)
        } else {
            (u16::to_be_bytes, u32::to_be_bytes)
        };
        t.extend_from_slice(if le { b"II" } else { b"MM" });
        t.extend_from_slice(&w16(42));
        t.extend_from_slice(&w32(8));
        t.extend_from_slice(&w16(1));
        t.extend_from_slice(&w16(0x0112));
        t.extend_from_slice(&w16(3));
        t.extend_from_slice(&w32(1));
        t.extend_from_slice(&w16(orientation));
        t.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        t
    }

    #[test]
    fn exif_orientation_is_read_in_both_byte_orders_and_bad_values_are_ignored() {
        assert_eq!(exif_orientation(&tiff(true, 6)), Some(6));
        assert_eq!(exif_orientation(&tiff(false, 8)), Some(8));
        assert_eq!(exif_orientation(&tiff(true, 9)), None);
        assert_eq!(exif_orientation(&tiff(true, 0)), None);
        assert_eq!(exif_orientation(&tiff(false, 3)[..12]), None);
        assert_eq!(exif_orientation(b"XX"), None);
    }
}
