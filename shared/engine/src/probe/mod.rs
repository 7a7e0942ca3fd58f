//! Reading what an image is from its header alone: format (magic bytes), stored dimensions, EXIF
//! orientation, and the JPEG details the decoder needs. No pixel is decoded and nothing larger
//! than the header is allocated, so limits are enforced before any pixel buffer exists.
//!
//! One module per format reads its header into a [`Header`]; this one sniffs the format, checks
//! the [`Limits`] and says what the header means for the caller ([`Probe`]).

mod exif;
mod gif;
mod heif;
mod jpeg;
mod png;
mod webp;

use crate::{ContentType, EngineError, Limits};

/// What [`probe`](fn@crate::probe) learns from the header.
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
    /// A header of `content_type` stored at `width` x `height`: upright (orientation 1), RGB,
    /// none of the JPEG details, no frame apart from the canvas.
    fn new(content_type: ContentType, width: u32, height: u32) -> Self {
        Header {
            content_type,
            width,
            height,
            orientation: 1,
            jpeg_components: 0,
            jpeg_scan_start: 0,
            jpeg_lossless: false,
            jpeg_full_buffer: 0,
            frame: None,
            decoded_channels: 3,
        }
    }

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
        if crate::heif::is_heic(bytes) {
            return Err(heif::heic(bytes));
        }
        return Err(EngineError::UnknownFormat);
    };
    let header = match content_type {
        ContentType::Jpeg => jpeg::header(bytes)?,
        ContentType::Png => png::header(bytes)?,
        ContentType::Gif => gif::header(bytes)?,
        ContentType::Webp => webp::header(bytes)?,
        ContentType::Avif => heif::avif(bytes)?,
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

/// The error of a header declaring an empty image.
pub(super) fn zero_sized(format: &'static str) -> EngineError {
    EngineError::corrupt(format, "the header declares a width or height of 0")
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
}
