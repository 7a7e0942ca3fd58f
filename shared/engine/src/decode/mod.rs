//! Decoding an original once into 8-bit RGB or RGBA pixels in stored orientation, as small as the
//! largest requested output allows (JPEG shrink-on-load in the DCT domain).
//!
//! One module per format: [`jpeg`] through libjpeg-turbo (feature `turbo`) or jpeg-decoder (pure
//! Rust); [`png`] through the `png` crate, narrowing 16-bit samples to 8 bits row by row and
//! widening gray in place, so the only full-size buffer is the 8-bit result; GIF through the
//! `image` crate ([`via_image`]); [`webp`] through libwebp (feature `turbo`) or image-webp;
//! [`avif`] through rav1d (`av1`), in both builds. CMYK/YCCK becomes RGB (Adobe-inverted CMYK, as
//! Photoshop writes it), and animations give their first frame. Colour conversion happens later,
//! on the outputs (`icc`).
//!
//! [`budget`] estimates from the header alone what a decode (and the first resampling from it)
//! holds at its peak, so an image that would not fit the function's memory is refused before any
//! pixel buffer exists; [`buffer`] keeps the decode's buffer between renders.

mod avif;
mod budget;
mod buffer;
mod jpeg;
mod png;
mod via_image;
mod webp;

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::probe::{format_name, Header};
use crate::{ContentType, EngineError, Limits};

pub(crate) use budget::{check_budget, jpeg_scale, ScaleHeadroom};
pub use budget::{EIGHTH_SCALE_HEADROOM, HALF_SCALE_HEADROOM, HEADROOM};
pub(crate) use buffer::recycle;
pub(crate) use png::{png_decoder, PNG_METADATA_LIMIT};

/// Decoded 8-bit pixels, rows tightly packed, `channels` 3 (RGB) or 4 (RGBA, straight alpha).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Pixels {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub data: Vec<u8>,
}

impl Pixels {
    /// `width` x `height` pixels of `channels` (3 or 4) bytes each, rows tightly packed.
    pub(crate) fn new(width: u32, height: u32, channels: u8, data: Vec<u8>) -> Self {
        Pixels {
            width,
            height,
            channels,
            data,
        }
    }
}

impl std::fmt::Debug for Pixels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pixels({}x{}x{})",
            self.width, self.height, self.channels
        )
    }
}

/// Decodes `bytes` (already probed as `header`), at a size whose longest edge is at least
/// `min_long` where the format can scale while decoding.
/// `fast_upsample`: a JPEG's chroma is upsampled by repetition (libjpeg-turbo's merged
/// upsampling and colour conversion) instead of its triangular filter; for decodes that are then
/// downscaled (see `RenderOptions::fast_chroma_upsampling`).
pub(crate) fn decode(
    bytes: &[u8],
    header: &Header,
    min_long: u32,
    fast_upsample: bool,
    limits: &Limits,
) -> Result<Pixels, EngineError> {
    let format = format_name(header.content_type);
    // Defence in depth: a panic inside a third-party decoder becomes a typed error, not a crash.
    let result = catch_unwind(AssertUnwindSafe(|| match header.content_type {
        ContentType::Jpeg => jpeg::decode(bytes, header, min_long, fast_upsample),
        ContentType::Png => png::decode(bytes, header),
        ContentType::Gif => via_image::decode(bytes, image::ImageFormat::Gif, header, limits),
        ContentType::Webp => webp::decode(bytes, header, min_long, limits),
        ContentType::Avif => avif::decode(bytes, header),
    }));
    let pixels = result.unwrap_or_else(|_| {
        Err(EngineError::corrupt(
            format,
            "the decoder failed on malformed data",
        ))
    })?;
    if pixels.width == 0 || pixels.height == 0 {
        return Err(EngineError::corrupt(format, "the decoded image is empty"));
    }
    Ok(pixels)
}

/// Refuses a decode whose size is not the header's.
fn check_size(
    format: &'static str,
    decoded: (u32, u32),
    header: &Header,
) -> Result<(), EngineError> {
    if decoded != (header.width, header.height) {
        return Err(EngineError::corrupt(
            format,
            "the decoded size differs from the header's",
        ));
    }
    Ok(())
}

/// A decoder's message as an error: [`EngineError::Truncated`] when it says the data ended
/// early, else [`EngineError::Corrupt`] with the message.
fn truncated_or_corrupt(format: &'static str, msg: String) -> EngineError {
    let lower = msg.to_lowercase();
    let ended = ["eof", "end of file", "unexpected end", "no more data"]
        .iter()
        .any(|words| lower.contains(words));
    if ended {
        EngineError::Truncated { format }
    } else {
        EngineError::corrupt(format, msg)
    }
}
