//! Reading what an image is from its header alone: format (magic bytes), stored dimensions, EXIF
//! orientation, and the JPEG details the decoder needs. No pixel is decoded and nothing larger
//! than the header is allocated, so limits are enforced before any pixel buffer exists.

use crate::ContentType;

use super::heif::{self, Heif};
use super::{EngineError, Limits};

/// What [`probe`](super::probe) learns from the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The format, from the magic bytes (whatever the upload claimed).
    pub content_type: ContentType,
    /// Width as displayed, i.e. after applying the EXIF orientation.
    pub width: u32,
    /// Height as displayed, i.e. after applying the EXIF orientation.
    pub height: u32,
    /// EXIF orientation 1-8 (1 when absent or invalid).
    pub orientation: u8,
}

/// The header facts the engine works from (stored, not displayed, dimensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub content_type: ContentType,
    pub width: u32,
    pub height: u32,
    pub orientation: u8,
    /// JPEG only: number of components in the frame (1 gray, 3 YCbCr/RGB, 4 CMYK/YCCK).
    pub jpeg_components: u8,
    /// JPEG only: offset of the first scan's data (after the SOS marker).
    pub jpeg_scan_start: usize,
    /// JPEG only: a lossless (SOF3/7/11/15) frame, which libjpeg decodes at full size only.
    pub jpeg_lossless: bool,
    /// JPEG only: the bytes libjpeg holds for the whole image beside its output when the file
    /// has several scans (progressive, or sequential with a first scan that does not hold every
    /// component): a full-size coefficient buffer, 2 bytes a sample, whatever the DCT scale
    /// (for lossless, the samples). 0 for a single-scan file.
    pub jpeg_full_buffer: u64,
    /// A frame a decoder allocates at its own size beside the canvas, when there is one: a GIF's
    /// first frame unless it is exactly the canvas, the largest AVIF grid tile or alpha plane
    /// (their `ispe`) when larger than the canvas.
    pub frame: Option<(u32, u32)>,
    /// Channels of the 8-bit decode: 4 when the image may have alpha, else 3. Sizes the decode
    /// budget before anything is decoded.
    pub decoded_channels: u8,
}

impl Header {
    /// Whether the orientation swaps width and height (5-8).
    pub fn transposed(&self) -> bool {
        self.orientation >= 5
    }

    pub fn probe(&self) -> Probe {
        let (width, height) = if self.transposed() {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        };
        Probe {
            content_type: self.content_type,
            width,
            height,
            orientation: self.orientation,
        }
    }
}

/// The format's short lower-case name, for messages.
pub(crate) fn format_name(ct: ContentType) -> &'static str {
    match ct {
        ContentType::Jpeg => "jpeg",
        ContentType::Png => "png",
        ContentType::Webp => "webp",
        ContentType::Gif => "gif",
        ContentType::Avif => "avif",
    }
}

/// Reads and checks the header: format, dimensions, orientation, and the limits.
pub(crate) fn read_header(bytes: &[u8], limits: &Limits) -> Result<Header, EngineError> {
    if bytes.is_empty() {
        return Err(EngineError::Empty);
    }
    let Some(content_type) = ContentType::sniff(bytes) else {
        if heif::is_heic(bytes) {
            return Err(heic(bytes));
        }
        return Err(EngineError::UnknownFormat);
    };
    let header = match content_type {
        ContentType::Jpeg => jpeg(bytes)?,
        ContentType::Png => png(bytes)?,
        ContentType::Gif => gif(bytes)?,
        ContentType::Webp => webp(bytes)?,
        ContentType::Avif => avif(bytes)?,
    };
    check_limits(&header, limits)?;
    Ok(header)
}

fn check_limits(h: &Header, limits: &Limits) -> Result<(), EngineError> {
    let (width, height) = (h.width, h.height);
    if width.max(height) > limits.max_side {
        return Err(EngineError::SideTooLarge {
            width,
            height,
            max_side: limits.max_side,
        });
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(EngineError::TooManyPixels {
            width,
            height,
            max_pixels: limits.max_pixels,
        });
    }
    Ok(())
}

fn u16_be(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn u32_be(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn u24_le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        0,
    ]))
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

fn zero_sized(format: &'static str) -> EngineError {
    EngineError::corrupt(format, "the header declares a width or height of 0")
}

/// JPEG: walks the marker segments up to the first SOS, taking the first SOF and the first EXIF
/// orientation.
fn jpeg(b: &[u8]) -> Result<Header, EngineError> {
    const F: &str = "jpeg";
    let truncated = EngineError::Truncated { format: F };
    let mut pos = 2;
    let mut frame: Option<JpegFrame> = None;
    let mut orientation = None;
    loop {
        // Skip anything up to the next marker (libjpeg tolerates stray bytes here), then fill bytes.
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
            0xDA => break,
            _ => {}
        }
        let len = usize::from(u16_be(b, pos).ok_or(truncated.clone())?);
        if len < 2 {
            return Err(EngineError::corrupt(
                F,
                "a marker segment has an invalid length",
            ));
        }
        let seg = b.get(pos + 2..pos + len).ok_or(truncated.clone())?;
        match marker {
            // Start of frame, any coding process (C4 DHT, C8 JPG and CC DAC are not frames).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) && frame.is_none() => {
                let precision = *seg.first().ok_or(truncated.clone())?;
                let height = u16_be(seg, 1).ok_or(truncated.clone())?;
                let width = u16_be(seg, 3).ok_or(truncated.clone())?;
                let comps = *seg.get(5).ok_or(truncated.clone())?;
                if height == 0 {
                    return Err(EngineError::Unsupported(
                        "jpeg images whose height is given after the scan (DNL) are not supported"
                            .into(),
                    ));
                }
                if width == 0 {
                    return Err(zero_sized(F));
                }
                if !matches!(comps, 1 | 3 | 4) {
                    return Err(EngineError::Unsupported(format!(
                        "jpeg images with {comps} colour components are not supported"
                    )));
                }
                // Each component: id, sampling factors (H << 4 | V), quantisation table.
                let sampling = (0..usize::from(comps))
                    .map(|i| seg.get(7 + 3 * i).map(|hv| (hv >> 4, hv & 15)))
                    .collect::<Option<Vec<(u8, u8)>>>()
                    .ok_or(truncated.clone())?;
                if sampling
                    .iter()
                    .any(|&(h, v)| !(1..=4).contains(&h) || !(1..=4).contains(&v))
                {
                    return Err(EngineError::corrupt(F, "invalid sampling factors"));
                }
                frame = Some(JpegFrame {
                    width: u32::from(width),
                    height: u32::from(height),
                    precision,
                    progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
                    lossless: matches!(marker, 0xC3 | 0xC7 | 0xCB | 0xCF),
                    sampling,
                });
            }
            0xE1 if orientation.is_none() => {
                if let Some(tiff) = seg.strip_prefix(b"Exif\0\0") {
                    orientation = exif_orientation(tiff);
                }
            }
            _ => {}
        }
        pos += len;
    }
    let frame = frame
        .ok_or_else(|| EngineError::corrupt(F, "the image data starts before the frame header"))?;
    // The first scan's component count (SOS: length, then Ns). A file cut before it is left for
    // the decoder to report; it is budgeted as if it had several scans.
    let scan_components = b.get(pos + 2).copied().unwrap_or(0);
    Ok(Header {
        content_type: ContentType::Jpeg,
        width: frame.width,
        height: frame.height,
        orientation: orientation.unwrap_or(1),
        jpeg_components: frame.sampling.len() as u8,
        jpeg_scan_start: pos,
        jpeg_lossless: frame.lossless,
        jpeg_full_buffer: frame.full_buffer(scan_components),
        frame: None,
        decoded_channels: 3,
    })
}

/// A JPEG frame header (SOF), as far as memory depends on it.
struct JpegFrame {
    width: u32,
    height: u32,
    /// Bits per sample.
    precision: u8,
    progressive: bool,
    lossless: bool,
    /// (H, V) sampling factors of each component, 1-4.
    sampling: Vec<(u8, u8)>,
}

impl JpegFrame {
    /// What libjpeg-turbo allocates for the whole image when it must read every scan before
    /// output (`has_multiple_scans`: progressive, or a first scan with fewer components than the
    /// frame): per component, its blocks (rounded up to whole MCUs) of 64 two-byte coefficients,
    /// or for lossless its samples (1 byte each up to 8 bits, else 2), at full size whatever
    /// the output scale (jdcoefct.c, jddiffct.c). 0 for a single-scan file.
    fn full_buffer(&self, scan_components: u8) -> u64 {
        if !self.progressive && usize::from(scan_components) >= self.sampling.len() {
            return 0;
        }
        let h_max = u64::from(self.sampling.iter().map(|s| s.0).max().unwrap_or(1));
        let v_max = u64::from(self.sampling.iter().map(|s| s.1).max().unwrap_or(1));
        let (unit, bytes_per_unit) = match (self.lossless, self.precision) {
            (true, 0..=8) => (1, 1),
            (true, _) => (1, 2),
            (false, _) => (8, 128),
        };
        let (w, h) = (u64::from(self.width), u64::from(self.height));
        self.sampling
            .iter()
            .map(|&(hs, vs)| {
                let (hs, vs) = (u64::from(hs), u64::from(vs));
                let cols = (w * hs).div_ceil(h_max * unit).next_multiple_of(hs);
                let rows = (h * vs).div_ceil(v_max * unit).next_multiple_of(vs);
                cols * rows * bytes_per_unit
            })
            .sum()
    }
}

/// The orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block, if valid (1-8).
pub(crate) fn exif_orientation(tiff: &[u8]) -> Option<u8> {
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

/// PNG: IHDR, then the chunks before the first IDAT for an `eXIf` orientation.
fn png(b: &[u8]) -> Result<Header, EngineError> {
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
                let tiff = data.strip_prefix(b"Exif\0\0").unwrap_or(data);
                orientation = exif_orientation(tiff).unwrap_or(1);
            }
        }
        match pos.checked_add(12 + len) {
            Some(next) => pos = next,
            None => break,
        }
    }
    Ok(Header {
        content_type: ContentType::Png,
        width,
        height,
        orientation,
        jpeg_components: 0,
        jpeg_scan_start: 0,
        jpeg_lossless: false,
        jpeg_full_buffer: 0,
        frame: None,
        decoded_channels: if alpha { 4 } else { 3 },
    })
}

/// GIF: the logical screen size (frames are composited onto it) and the first frame's size,
/// which the decoder allocates on its own when the frame is not exactly the screen.
fn gif(b: &[u8]) -> Result<Header, EngineError> {
    const F: &str = "gif";
    let truncated = EngineError::Truncated { format: F };
    let width = u32::from(u16_le(b, 6).ok_or(truncated.clone())?);
    let height = u32::from(u16_le(b, 8).ok_or(truncated)?);
    if width == 0 || height == 0 {
        return Err(zero_sized(F));
    }
    // A file cut before its first frame is left for the decoder to report.
    let frame = gif_first_frame(b)
        .filter(|&f| f != (0, 0, width, height))
        .map(|(_, _, w, h)| (w, h));
    Ok(Header {
        content_type: ContentType::Gif,
        width,
        height,
        orientation: 1,
        jpeg_components: 0,
        jpeg_scan_start: 0,
        jpeg_lossless: false,
        jpeg_full_buffer: 0,
        frame,
        decoded_channels: 4,
    })
}

/// The first image descriptor of a GIF: left, top, width, height. Skips the global colour table
/// and the extension blocks before it; `None` if the file ends first or holds something else.
fn gif_first_frame(b: &[u8]) -> Option<(u32, u32, u32, u32)> {
    let flags = *b.get(10)?;
    let mut pos = 13usize;
    if flags & 0x80 != 0 {
        pos += 3 << ((flags & 7) + 1);
    }
    loop {
        match *b.get(pos)? {
            // Extension: introducer, label, then data sub-blocks up to an empty one.
            0x21 => {
                pos += 2;
                loop {
                    let n = usize::from(*b.get(pos)?);
                    pos += 1 + n;
                    if n == 0 {
                        break;
                    }
                }
            }
            0x2C => {
                let field = |at: usize| u16_le(b, pos + at).map(u32::from);
                return Some((field(1)?, field(3)?, field(5)?, field(7)?));
            }
            _ => return None,
        }
    }
}

/// WebP: the first chunk gives the size (VP8, VP8L or VP8X canvas); an EXIF chunk may give the
/// orientation.
fn webp(b: &[u8]) -> Result<Header, EngineError> {
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
    let mut orientation = 1;
    if extended {
        let mut pos = 12usize;
        while let (Some(kind), Some(len)) = (b.get(pos..pos + 4), u32_le(b, pos + 4)) {
            let len = len as usize;
            if kind == b"EXIF" {
                if let Some(data) = b.get(pos + 8..pos + 8 + len) {
                    let tiff = data.strip_prefix(b"Exif\0\0").unwrap_or(data);
                    orientation = exif_orientation(tiff).unwrap_or(1);
                }
                break;
            }
            match pos.checked_add(8 + len + (len & 1)) {
                Some(next) => pos = next,
                None => break,
            }
        }
    }
    Ok(Header {
        content_type: ContentType::Webp,
        width,
        height,
        orientation,
        jpeg_components: 0,
        jpeg_scan_start: 0,
        jpeg_lossless: false,
        jpeg_full_buffer: 0,
        frame: None,
        // Lossy VP8 without VP8X has no alpha; anything else may.
        decoded_channels: if kind == b"VP8 " { 3 } else { 4 },
    })
}

/// AVIF: the primary item's `ispe` (a grid's is the whole image), orientation from `irot` and
/// `imir`; the largest other item decoded on its own (a grid tile, the alpha plane) when it
/// declares more pixels than the image.
fn avif(b: &[u8]) -> Result<Header, EngineError> {
    let heif = Heif::parse(b, "avif")?;
    let canvas = u64::from(heif.width) * u64::from(heif.height);
    let frame = heif
        .grid
        .iter()
        .flat_map(|g| g.tiles.iter())
        .chain(heif.alpha.iter())
        .filter_map(|&item| heif.item_size(item))
        .filter(|&(w, h)| u64::from(w) * u64::from(h) > canvas)
        .max_by_key(|&(w, h)| u64::from(w) * u64::from(h));
    Ok(Header {
        content_type: ContentType::Avif,
        width: heif.width,
        height: heif.height,
        orientation: heif.orientation,
        jpeg_components: 0,
        jpeg_scan_start: 0,
        jpeg_lossless: false,
        jpeg_full_buffer: 0,
        frame,
        decoded_channels: if heif.alpha.is_some() { 4 } else { 3 },
    })
}

/// HEIC (HEVC in HEIF): recognised and described, but refused: this build has no HEVC decoder
/// (see the engine's module doc for why).
fn heic(b: &[u8]) -> EngineError {
    let detail = match Heif::parse(b, "heic") {
        Ok(h) => {
            let (w, hgt) = if h.orientation >= 5 {
                (h.height, h.width)
            } else {
                (h.width, h.height)
            };
            format!("a {w}x{hgt} heic/heif photo")
        }
        Err(_) => "a heic/heif file".to_owned(),
    };
    EngineError::Unsupported(format!(
        "{detail}: HEVC-coded images cannot be decoded here (no licence-clean HEVC decoder); \
         export it as JPEG (iPhone: Settings > Camera > Formats > Most Compatible) or AVIF"
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend_from_slice(&width.to_be_bytes());
        b.extend_from_slice(&height.to_be_bytes());
        b.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        b
    }

    #[test]
    fn a_png_declaring_100000_squared_pixels_is_rejected_from_its_header() {
        let err = read_header(&png_header(100_000, 100_000), &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "too_large");
        let err = read_header(&png_header(10_000, 10_001), &Limits::default()).unwrap_err();
        assert!(matches!(err, EngineError::TooManyPixels { .. }), "{err:?}");
        let tight = Limits {
            max_pixels: 100,
            max_side: 10,
            ..Limits::default()
        };
        assert!(matches!(
            read_header(&png_header(11, 2), &tight),
            Err(EngineError::SideTooLarge { .. })
        ));
    }

    #[test]
    fn empty_unknown_and_cut_headers_give_typed_errors() {
        assert_eq!(
            read_header(b"", &Limits::default()),
            Err(EngineError::Empty)
        );
        assert_eq!(
            read_header(b"hello", &Limits::default()),
            Err(EngineError::UnknownFormat)
        );
        assert_eq!(
            read_header(&[0xFF, 0xD8, 0xFF], &Limits::default()),
            Err(EngineError::Truncated { format: "jpeg" })
        );
        assert_eq!(
            read_header(&png_header(4, 4)[..20], &Limits::default()),
            Err(EngineError::Truncated { format: "png" })
        );
        assert_eq!(
            read_header(b"GIF89a\x01", &Limits::default()),
            Err(EngineError::Truncated { format: "gif" })
        );
    }

    fn tiff(le: bool, orientation: u16) -> Vec<u8> {
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

    #[test]
    fn jpeg_headers_give_stored_size_and_orientation() {
        // SOI, APP1 Exif (orientation 6), SOF0 40x30 3 components, SOS.
        let mut b = vec![0xFF, 0xD8];
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(tiff(false, 6));
        b.extend_from_slice(&[0xFF, 0xE1]);
        b.extend_from_slice(&(app1.len() as u16 + 2).to_be_bytes());
        b.extend(app1);
        b.extend_from_slice(&[
            0xFF, 0xC0, 0, 17, 8, 0, 30, 0, 40, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1,
        ]);
        b.extend_from_slice(&[0xFF, 0xDA, 0, 2]);
        let h = read_header(&b, &Limits::default()).unwrap();
        assert_eq!(
            (h.width, h.height, h.orientation, h.jpeg_components),
            (40, 30, 6, 3)
        );
        let p = h.probe();
        assert_eq!((p.width, p.height), (30, 40));
    }

    /// SOI, SOF (`marker`, 8-bit, `sampling` per component), SOS with `scan` components.
    fn jpeg_frame(marker: u8, w: u16, h: u16, sampling: &[u8], scan: u8) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8, 0xFF, marker];
        b.extend_from_slice(&(8 + 3 * sampling.len() as u16).to_be_bytes());
        b.push(8);
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&w.to_be_bytes());
        b.push(sampling.len() as u8);
        for (i, s) in sampling.iter().enumerate() {
            b.extend_from_slice(&[i as u8 + 1, *s, 0]);
        }
        b.extend_from_slice(&[0xFF, 0xDA, 0, 8, scan]);
        b
    }

    #[test]
    fn multi_scan_jpegs_count_their_full_size_coefficients_and_single_scan_ones_none() {
        let limits = Limits::default();
        // 4:2:0 baseline, one interleaved scan: decoded a band at a time.
        let h = read_header(
            &jpeg_frame(0xC0, 4000, 3000, &[0x22, 0x11, 0x11], 3),
            &limits,
        );
        assert_eq!(h.unwrap().jpeg_full_buffer, 0);
        // The same, progressive: luma 500x375 blocks, chroma 250x188 (rounded up), 128 bytes each.
        let h = read_header(
            &jpeg_frame(0xC2, 4000, 3000, &[0x22, 0x11, 0x11], 3),
            &limits,
        );
        let luma = 500 * 376 * 128; // rows rounded up to the 2-block MCU
        let chroma = 250 * 188 * 128;
        assert_eq!(h.unwrap().jpeg_full_buffer, luma + 2 * chroma);
        // Sequential, but the first scan holds one component of three: also every coefficient.
        let h = read_header(&jpeg_frame(0xC0, 800, 800, &[0x11; 3], 1), &limits).unwrap();
        assert_eq!(h.jpeg_full_buffer, 3 * 100 * 100 * 128);
        assert!(!h.jpeg_lossless);
        // Lossless, one scan: no buffer, but never decoded at a reduced scale.
        let h = read_header(&jpeg_frame(0xC3, 800, 800, &[0x11; 3], 3), &limits).unwrap();
        assert!(h.jpeg_lossless);
        assert_eq!(h.jpeg_full_buffer, 0);
    }

    #[test]
    fn a_gif_frame_other_than_the_screen_is_read_from_its_descriptor() {
        let gif = |frame: [u16; 4]| {
            // Screen 16x16 with a 2-colour table, a graphic control extension, then the frame.
            let mut b = b"GIF89a\x10\0\x10\0\x80\0\0\0\0\0\xff\xff\xff".to_vec();
            b.extend_from_slice(&[0x21, 0xF9, 4, 0, 0, 0, 0, 0]);
            b.push(0x2C);
            for v in frame {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&[0, 2, 0, 0x3B]);
            b
        };
        let h = read_header(&gif([0, 0, 16, 16]), &Limits::default()).unwrap();
        assert_eq!(h.frame, None);
        let h = read_header(&gif([0, 0, 16000, 9000]), &Limits::default()).unwrap();
        assert_eq!((h.width, h.height, h.frame), (16, 16, Some((16000, 9000))));
        let h = read_header(&gif([8, 8, 16, 16]), &Limits::default()).unwrap();
        assert_eq!(h.frame, Some((16, 16)));
    }

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

    fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(payload);
        v
    }

    /// A HEIF header: one primary item of `item_type`, `ispe` 640x480 plus `extra` properties.
    fn heif_header(brand: &[u8; 4], item_type: &[u8; 4], extra: &[Vec<u8>]) -> Vec<u8> {
        let mut ispe = vec![0, 0, 0, 0];
        ispe.extend_from_slice(&640u32.to_be_bytes());
        ispe.extend_from_slice(&480u32.to_be_bytes());
        let mut props = bx(b"ispe", &ispe);
        for p in extra {
            props.extend_from_slice(p);
        }
        let mut ipma = vec![0, 0, 0, 0, 0, 0, 0, 1, 0, 1];
        ipma.push(1 + extra.len() as u8);
        ipma.extend((1..=1 + extra.len() as u8).map(|i| 0x80 | i));
        let mut iprp = bx(b"ipco", &props);
        iprp.extend(bx(b"ipma", &ipma));
        let mut infe = vec![2, 0, 0, 0, 0, 1, 0, 0];
        infe.extend_from_slice(item_type);
        let mut iinf = vec![0, 0, 0, 0, 0, 1];
        iinf.extend(bx(b"infe", &infe));
        // iloc v0, 4-byte offsets and lengths: item 1 at 0, 4 bytes (never read by probe).
        let iloc = [
            0, 0, 0, 0, 0x44, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 4,
        ];
        let mut meta = vec![0, 0, 0, 0];
        meta.extend(bx(b"hdlr", b"xxxxxxxx"));
        meta.extend(bx(b"pitm", &[0, 0, 0, 0, 0, 1]));
        meta.extend(bx(b"iinf", &iinf));
        meta.extend(bx(b"iloc", &iloc));
        meta.extend(bx(b"iprp", &iprp));
        let mut ftyp = brand.to_vec();
        ftyp.extend_from_slice(b"\0\0\0\0mif1");
        ftyp.extend_from_slice(brand);
        let mut file = bx(b"ftyp", &ftyp);
        file.extend(bx(b"meta", &meta));
        file
    }

    #[test]
    fn avif_headers_give_the_ispe_size_and_the_irot_orientation() {
        let file = heif_header(b"avif", b"av01", &[]);
        let h = read_header(&file, &Limits::default()).unwrap();
        assert_eq!(
            (h.content_type, h.width, h.height, h.orientation),
            (ContentType::Avif, 640, 480, 1)
        );
        // irot 3 = 270 degrees anticlockwise = EXIF 6: displayed 480x640.
        let file = heif_header(b"avif", b"av01", &[bx(b"irot", &[3])]);
        let p = read_header(&file, &Limits::default()).unwrap().probe();
        assert_eq!((p.width, p.height, p.orientation), (480, 640, 6));
    }

    #[test]
    fn heic_is_refused_as_unsupported_with_its_size_and_the_reason() {
        let file = heif_header(b"heic", b"hvc1", &[bx(b"irot", &[1])]);
        let err = read_header(&file, &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "unsupported");
        let msg = err.to_string();
        assert!(msg.contains("480x640 heic"), "{msg}");
        assert!(msg.contains("HEVC"), "{msg}");
    }
}
