//! JPEG: libjpeg-turbo (feature `turbo`), scaled in the DCT domain at the scale the budget was
//! checked at, or jpeg-decoder (pure Rust), which picks the same scale. CMYK/YCCK becomes RGB
//! (Adobe-inverted CMYK, as Photoshop writes it).

#[cfg(not(feature = "turbo"))]
use std::io::Cursor;

#[cfg(feature = "turbo")]
use super::budget::jpeg_denominator;
#[cfg(feature = "turbo")]
use super::buffer::{pixel_buffer, recycle};
use super::Pixels;
use crate::probe::Header;
use crate::EngineError;

/// Decodes a JPEG at a size whose longest edge is at least `min_long` (see [`super::decode`]),
/// refusing first a file cut short. `fast_upsample` is libjpeg-turbo's option (jpeg-decoder
/// upsamples chroma one way).
#[cfg_attr(not(feature = "turbo"), allow(unused_variables))]
pub(super) fn decode(
    bytes: &[u8],
    header: &Header,
    min_long: u32,
    fast_upsample: bool,
) -> Result<Pixels, EngineError> {
    // Entropy-coded data never holds FF D9 (an FF there is followed by 00 or a restart
    // marker), so a file without it after the scan starts was cut short. Decoders would
    // otherwise fill the missing rows with gray.
    let scan = bytes.get(header.jpeg_scan_start..).unwrap_or_default();
    if !scan.windows(2).rev().any(|w| w == [0xFF, 0xD9]) {
        return Err(EngineError::Truncated { format: "jpeg" });
    }
    #[cfg(feature = "turbo")]
    {
        turbo(bytes, header, min_long, fast_upsample)
    }
    #[cfg(not(feature = "turbo"))]
    {
        pure(bytes, header, min_long)
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

/// libjpeg-turbo, at the DCT scale the budget was checked at.
#[cfg(feature = "turbo")]
fn turbo(
    bytes: &[u8],
    header: &Header,
    min_long: u32,
    fast_upsample: bool,
) -> Result<Pixels, EngineError> {
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
    // The scale the decode budget was checked at (`jpeg_denominator`): 1/8, 1/4, 1/2 or 1.
    // libjpeg-turbo also offers 3/8, 5/8, 3/4 and 7/8, but their IDCTs have no SIMD: measured
    // with callgrind on a 12 MP photo, 3/8 costs more than 1/2 and 5/8-7/8 more than a full-size
    // decode.
    let factor = if h.is_lossless {
        ScalingFactor::ONE
    } else {
        let d = jpeg_denominator(header.width.max(header.height), min_long);
        ScalingFactor::new(1, usize::try_from(d).unwrap_or(1))
    };
    d.set_scaling_factor(factor).map_err(tj)?;
    d.set_fast_upsample(fast_upsample).map_err(tj)?;
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
        pixels: pixel_buffer(width * height * size),
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
        let rgb = inverted_cmyk_to_rgb(&image.pixels);
        recycle(image.pixels);
        rgb
    } else {
        image.pixels
    };
    Ok(Pixels::new(width, height, 3, data))
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

/// jpeg-decoder (pure Rust), which picks the same DCT scale as libjpeg-turbo would.
#[cfg(not(feature = "turbo"))]
fn pure(bytes: &[u8], header: &Header, min_long: u32) -> Result<Pixels, EngineError> {
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
    Ok(Pixels::new(width, height, 3, data))
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
