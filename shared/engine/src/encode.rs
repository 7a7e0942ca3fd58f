//! Encoding upright 8-bit pixels. Encoders write pixels only: no EXIF, GPS, XMP, ICC or embedded
//! thumbnail reaches an output (the JPEG carries just its JFIF header).

use super::decode::Pixels;
use super::transform::flatten_on_white;
use super::{EngineError, OutputFormat};

/// Encodes `px` (RGB or RGBA) as `format` at `quality` (1-100). JPEG flattens alpha on white.
pub(crate) fn encode(
    px: &Pixels,
    format: OutputFormat,
    quality: u8,
) -> Result<Vec<u8>, EngineError> {
    match format {
        OutputFormat::Jpeg => {
            if px.channels == 4 {
                jpeg(&flatten_on_white(px), quality)
            } else {
                jpeg(px, quality)
            }
        }
        OutputFormat::Webp => webp(px, quality),
        OutputFormat::Png => png(px),
        OutputFormat::Avif => avif(px, quality),
    }
}

fn failed(format: OutputFormat, reason: impl std::fmt::Display) -> EngineError {
    EngineError::Encode {
        format: format.as_str(),
        reason: reason.to_string().to_lowercase(),
    }
}

/// 4:2:0, optimised Huffman tables, baseline.
#[cfg(feature = "turbo")]
fn jpeg(px: &Pixels, quality: u8) -> Result<Vec<u8>, EngineError> {
    use turbojpeg::{Compressor, Image, PixelFormat, Subsamp};
    let fail = |e: turbojpeg::Error| failed(OutputFormat::Jpeg, e);
    let mut c = Compressor::new().map_err(fail)?;
    c.set_quality(i32::from(quality)).map_err(fail)?;
    c.set_subsamp(Subsamp::Sub2x2).map_err(fail)?;
    c.set_optimize(true).map_err(fail)?;
    let (width, height) = (px.width as usize, px.height as usize);
    let image = Image {
        pixels: px.data.as_slice(),
        width,
        pitch: width * 3,
        height,
        format: PixelFormat::RGB,
    };
    c.compress_to_vec(image).map_err(fail)
}

/// 4:2:0, optimised Huffman tables, baseline.
#[cfg(not(feature = "turbo"))]
fn jpeg(px: &Pixels, quality: u8) -> Result<Vec<u8>, EngineError> {
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
    let (Ok(w), Ok(h)) = (u16::try_from(px.width), u16::try_from(px.height)) else {
        return Err(failed(
            OutputFormat::Jpeg,
            "a jpeg side cannot exceed 65535 px",
        ));
    };
    let mut out = Vec::new();
    let mut e = Encoder::new(&mut out, quality);
    e.set_sampling_factor(SamplingFactor::F_2_2);
    e.set_optimized_huffman_tables(true);
    e.encode(&px.data, w, h, ColorType::Rgb)
        .map_err(|err| failed(OutputFormat::Jpeg, err))?;
    Ok(out)
}

const WEBP_MAX_SIDE: u32 = 16_383;

/// Refuses pixels with a side longer than WebP can hold.
fn check_webp_side(px: &Pixels) -> Result<(), EngineError> {
    if px.width.max(px.height) > WEBP_MAX_SIDE {
        return Err(failed(
            OutputFormat::Webp,
            "a webp side cannot exceed 16383 px",
        ));
    }
    Ok(())
}

/// The `image` crate's name for the layout of `px`: RGBA or RGB, 8 bits a channel.
fn color_type(px: &Pixels) -> image::ExtendedColorType {
    if px.channels == 4 {
        image::ExtendedColorType::Rgba8
    } else {
        image::ExtendedColorType::Rgb8
    }
}

/// Lossy, libwebp's default method (4), alpha kept.
#[cfg(feature = "turbo")]
fn webp(px: &Pixels, quality: u8) -> Result<Vec<u8>, EngineError> {
    check_webp_side(px)?;
    let layout = if px.channels == 4 {
        webp::PixelLayout::Rgba
    } else {
        webp::PixelLayout::Rgb
    };
    let encoder = webp::Encoder::new(&px.data, layout, px.width, px.height);
    let mem = encoder
        .encode_simple(false, f32::from(quality))
        .map_err(|e| failed(OutputFormat::Webp, format!("{e:?}")))?;
    Ok(mem.to_vec())
}

/// Without the C codecs WebP is lossless (image-webp has no lossy encoder); `quality` is unused.
#[cfg(not(feature = "turbo"))]
fn webp(px: &Pixels, _quality: u8) -> Result<Vec<u8>, EngineError> {
    use image::codecs::webp::WebPEncoder;
    check_webp_side(px)?;
    let mut out = Vec::new();
    WebPEncoder::new_lossless(&mut out)
        .encode(&px.data, px.width, px.height, color_type(px))
        .map_err(|e| failed(OutputFormat::Webp, e))?;
    Ok(out)
}

fn png(px: &Pixels) -> Result<Vec<u8>, EngineError> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder as _;
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Default, FilterType::Adaptive)
        .write_image(&px.data, px.width, px.height, color_type(px))
        .map_err(|e| failed(OutputFormat::Png, e))?;
    Ok(out)
}

#[cfg(feature = "avif")]
fn avif(px: &Pixels, quality: u8) -> Result<Vec<u8>, EngineError> {
    use image::codecs::avif::AvifEncoder;
    use image::ImageEncoder as _;
    let mut out = Vec::new();
    // Speed 8 of 1-10: AVIF is slow to encode; this keeps a 2048 px output within seconds.
    AvifEncoder::new_with_speed_quality(&mut out, 8, quality)
        .write_image(&px.data, px.width, px.height, color_type(px))
        .map_err(|e| failed(OutputFormat::Avif, e))?;
    Ok(out)
}

#[cfg(not(feature = "avif"))]
fn avif(_px: &Pixels, _quality: u8) -> Result<Vec<u8>, EngineError> {
    Err(EngineError::InvalidSpec(
        "avif output is not built in (enable the `avif` feature)".into(),
    ))
}
