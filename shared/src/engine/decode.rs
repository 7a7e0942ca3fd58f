//! Decoding an original once into 8-bit RGB or RGBA pixels in stored orientation, as small as the
//! largest requested output allows (JPEG shrink-on-load in the DCT domain).
//!
//! JPEG goes through libjpeg-turbo (feature `turbo`) or jpeg-decoder (pure Rust). PNG, GIF and
//! WebP go through the `image` crate's pure-Rust decoders in both builds. Gray becomes RGB, 16-bit
//! becomes 8-bit, CMYK/YCCK becomes RGB (Adobe-inverted CMYK, as Photoshop writes it), and
//! animations give their first frame. Embedded ICC profiles are not applied (see the module doc).

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::domain::ContentType;

use super::probe::{format_name, Header};
use super::{EngineError, Limits};

/// Decoded 8-bit pixels, rows tightly packed, `channels` 3 (RGB) or 4 (RGBA, straight alpha).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Pixels {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub data: Vec<u8>,
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

/// The JPEG shrink-on-load keeps at least this much resolution over the largest output, so the
/// final resampling still has detail to work with.
pub const HEADROOM: u32 = 2;

/// Decodes `bytes` (already probed as `header`), at a size whose longest edge is at least
/// `min_long` where the format can scale while decoding.
pub(crate) fn decode(
    bytes: &[u8],
    header: &Header,
    min_long: u32,
    limits: &Limits,
) -> Result<Pixels, EngineError> {
    let format = format_name(header.content_type);
    // Defence in depth: a panic inside a third-party decoder becomes a typed error, not a crash.
    let result = catch_unwind(AssertUnwindSafe(|| match header.content_type {
        ContentType::Jpeg => {
            // Entropy-coded data never holds FF D9 (an FF there is followed by 00 or a restart
            // marker), so a file without it after the scan starts was cut short. Decoders would
            // otherwise fill the missing rows with gray.
            let scan = bytes.get(header.jpeg_scan_start..).unwrap_or_default();
            if !scan.windows(2).rev().any(|w| w == [0xFF, 0xD9]) {
                return Err(EngineError::Truncated { format: "jpeg" });
            }
            decode_jpeg(bytes, header, min_long)
        }
        ContentType::Png => decode_with_image(bytes, image::ImageFormat::Png, header, limits),
        ContentType::Gif => decode_with_image(bytes, image::ImageFormat::Gif, header, limits),
        ContentType::Webp => decode_with_image(bytes, image::ImageFormat::WebP, header, limits),
        ContentType::Avif => Err(EngineError::Unsupported(
            "avif originals cannot be decoded yet".into(),
        )),
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

fn decode_with_image(
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
    // 16-bit RGBA is the widest a decoder produces: 8 bytes a pixel, plus conversion to 8-bit.
    image_limits.max_alloc = Some(limits.max_pixels.saturating_mul(12).max(64 << 20));
    reader.limits(image_limits);
    let img = reader.decode().map_err(|e| image_error(name, e))?;
    if (img.width(), img.height()) != (header.width, header.height) {
        return Err(EngineError::corrupt(
            name,
            "the decoded size differs from the header's",
        ));
    }
    let (width, height) = (img.width(), img.height());
    if img.color().has_alpha() {
        Ok(Pixels {
            width,
            height,
            channels: 4,
            data: img.into_rgba8().into_raw(),
        })
    } else {
        Ok(Pixels {
            width,
            height,
            channels: 3,
            data: img.into_rgb8().into_raw(),
        })
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
        other => {
            let msg = other.to_string();
            let lower = msg.to_lowercase();
            if lower.contains("eof")
                || lower.contains("end of file")
                || lower.contains("unexpected end")
                || lower.contains("no more data")
            {
                EngineError::Truncated { format }
            } else {
                EngineError::corrupt(format, msg)
            }
        }
    }
}

/// Converts CMYK as libjpeg delivers it for Adobe files (inverted: 255 = no ink) to RGB.
fn inverted_cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for px in cmyk.chunks_exact(4) {
        let k = u32::from(px[3]);
        for &c in &px[..3] {
            rgb.push(((u32::from(c) * k + 127) / 255) as u8);
        }
    }
    rgb
}

#[cfg(feature = "turbo")]
fn decode_jpeg(bytes: &[u8], header: &Header, min_long: u32) -> Result<Pixels, EngineError> {
    use turbojpeg::{Colorspace, Decompressor, Image, PixelFormat, ScalingFactor};
    const F: &str = "jpeg";
    let tj = |e: turbojpeg::Error| classify_turbo(&e.to_string());
    let mut d = Decompressor::new().map_err(tj)?;
    let h = d.read_header(bytes).map_err(tj)?;
    if (h.width, h.height) != (header.width as usize, header.height as usize) {
        return Err(EngineError::corrupt(
            F,
            "the frame size differs from the header's",
        ));
    }
    let long = h.width.max(h.height);
    let want = (min_long as usize).min(long);
    // Smallest DCT scale (n/8, never above 1) whose longest edge still reaches `want`.
    // Smallest of 1/8, 1/4, 1/2, 1 whose longest edge still reaches `want`. libjpeg-turbo also
    // offers 3/8, 5/8, 3/4 and 7/8, but their IDCTs have no SIMD: measured with callgrind on a
    // 12 MP photo, 3/8 costs more than 1/2 and 5/8-7/8 more than a full-size decode.
    let factor = if h.is_lossless {
        ScalingFactor::ONE
    } else {
        [
            ScalingFactor::ONE_EIGHTH,
            ScalingFactor::ONE_QUARTER,
            ScalingFactor::ONE_HALF,
        ]
        .into_iter()
        .find(|f| f.scale(long) >= want)
        .unwrap_or(ScalingFactor::ONE)
    };
    d.set_scaling_factor(factor).map_err(tj)?;
    // Guard against the progressive-scan denial of service (libjpeg-turbo's advice: 500).
    d.set_scan_limit(500).map_err(tj)?;
    let (width, height) = (factor.scale(h.width), factor.scale(h.height));
    let cmyk = matches!(h.colorspace, Colorspace::CMYK | Colorspace::YCCK);
    let format = if cmyk {
        PixelFormat::CMYK
    } else {
        PixelFormat::RGB
    };
    let size = format.size();
    let mut image = Image {
        pixels: vec![0u8; width * height * size],
        width,
        pitch: width * size,
        height,
        format,
    };
    if let Err(e) = d.decompress(bytes, image.as_deref_mut()) {
        let msg = e.to_string();
        if !is_harmless_warning(&msg) {
            return Err(classify_turbo(&msg));
        }
    }
    let (w, h) = (u32::try_from(width), u32::try_from(height));
    let (Ok(width), Ok(height)) = (w, h) else {
        return Err(EngineError::corrupt(F, "the decoded size is out of range"));
    };
    let data = if cmyk {
        inverted_cmyk_to_rgb(&image.pixels)
    } else {
        image.pixels
    };
    Ok(Pixels {
        width,
        height,
        channels: 3,
        data,
    })
}

/// libjpeg-turbo reports recoverable oddities as warnings, which the turbojpeg crate turns into
/// errors although the pixels were decoded. Stray bytes between markers lose nothing; data that
/// ends early or does not decode does (libjpeg fills it with gray), so those stay errors.
#[cfg(feature = "turbo")]
fn is_harmless_warning(msg: &str) -> bool {
    msg.contains("extraneous bytes before marker")
        || msg.contains("Unknown APP")
        || msg.contains("unknown JFIF revision")
}

#[cfg(feature = "turbo")]
fn classify_turbo(msg: &str) -> EngineError {
    let msg = msg.strip_prefix("TurboJPEG error: ").unwrap_or(msg);
    let lower = msg.to_lowercase();
    if lower.contains("premature end of jpeg file") {
        EngineError::Truncated { format: "jpeg" }
    } else if lower.contains("unsupported") || lower.contains("not supported") {
        EngineError::Unsupported(format!("jpeg: {lower}"))
    } else {
        EngineError::corrupt("jpeg", msg)
    }
}

#[cfg(not(feature = "turbo"))]
fn decode_jpeg(bytes: &[u8], header: &Header, min_long: u32) -> Result<Pixels, EngineError> {
    use jpeg_decoder::{Decoder, PixelFormat};
    const F: &str = "jpeg";
    let mut d = Decoder::new(Cursor::new(bytes));
    // The frame is at most 65535 px a side; the header check already bounded its pixels.
    let (w, h) = (header.width, header.height);
    let long = w.max(h);
    let want = min_long.min(long);
    // Ask for the same aspect ratio as the frame; the decoder picks the smallest of 1/8, 1/4,
    // 1/2 or 1 reaching it.
    let req = |side: u32| {
        u16::try_from((u64::from(side) * u64::from(want)).div_ceil(u64::from(long)))
            .unwrap_or(u16::MAX)
    };
    d.scale(req(w), req(h)).map_err(jpeg_decoder_error)?;
    let data = d.decode().map_err(jpeg_decoder_error)?;
    let info = d
        .info()
        .ok_or_else(|| EngineError::corrupt(F, "no frame header"))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    let px = (width as usize) * (height as usize);
    let data = match info.pixel_format {
        PixelFormat::RGB24 => data,
        PixelFormat::L8 => data.iter().flat_map(|&l| [l, l, l]).collect(),
        PixelFormat::L16 => data
            .chunks_exact(2)
            .flat_map(|c| [c[0], c[0], c[0]])
            .collect(),
        // jpeg-decoder returns ink amounts (255 = full ink): invert to libjpeg's convention.
        PixelFormat::CMYK32 => {
            let inverted: Vec<u8> = data.iter().map(|v| 255 - v).collect();
            inverted_cmyk_to_rgb(&inverted)
        }
    };
    if data.len() != px * 3 {
        return Err(EngineError::corrupt(
            F,
            "the decoder returned fewer pixels than the frame has",
        ));
    }
    Ok(Pixels {
        width,
        height,
        channels: 3,
        data,
    })
}

#[cfg(not(feature = "turbo"))]
fn jpeg_decoder_error(e: jpeg_decoder::Error) -> EngineError {
    use jpeg_decoder::Error;
    match e {
        Error::Unsupported(u) => EngineError::Unsupported(format!("jpeg: {u:?}").to_lowercase()),
        Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            EngineError::Truncated { format: "jpeg" }
        }
        other => {
            let msg = other.to_string();
            if msg.to_lowercase().contains("eof") {
                EngineError::Truncated { format: "jpeg" }
            } else {
                EngineError::corrupt("jpeg", msg)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn inverted_cmyk_converts_to_rgb() {
        // No ink -> white; full black ink -> black; full cyan ink -> (0, 255, 255).
        assert_eq!(inverted_cmyk_to_rgb(&[255, 255, 255, 255]), [255, 255, 255]);
        assert_eq!(inverted_cmyk_to_rgb(&[255, 255, 255, 0]), [0, 0, 0]);
        assert_eq!(inverted_cmyk_to_rgb(&[0, 255, 255, 255]), [0, 255, 255]);
    }
}
