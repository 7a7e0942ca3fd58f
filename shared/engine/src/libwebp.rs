//! WebP originals through libwebp's advanced decoding API (feature `turbo`), scaled while
//! decoding: libwebp rescales the YUV planes row by row as the VP8/VP8L decoder emits them
//! (an area-averaging filter), so a 12 MP WebP made into thumbnails never exists at full size
//! in RGB. This is libvips' and Pillow's shrink-on-load for WebP.
//!
//! `unsafe`: libwebp-sys exposes only the C interface (the `webp` crate's safe `Decoder` has no
//! scaling). The two calls that need it, `WebPGetFeatures` and `WebPDecode`, get a pointer and
//! length from a live `&[u8]`, and `WebPDecode` writes into a `Vec` owned here, passed as
//! *external memory* with its exact size: libwebp checks that `stride * height` fits that size
//! before writing (`CheckDecBuffer`) and allocates nothing it would hand back (so there is no
//! libwebp-owned buffer to free; `WebPFreeDecBuffer` is still called, as its API asks).
//! Still images only: animations go through image-webp (first frame composited).
#![allow(unsafe_code)]

use libwebp_sys::{
    VP8StatusCode, WebPDecode, WebPDecoderConfig, WebPFreeDecBuffer, WebPGetFeatures,
    WebPRGBABuffer, WEBP_CSP_MODE,
};

use super::decode::Pixels;
use super::EngineError;

const F: &str = "webp";

/// Why libwebp did not decode a still image.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// An animation: the caller composites the first frame another way.
    Animated,
    /// libwebp's status for a bitstream it could not decode (truncated, corrupt, unsupported).
    Failed(VP8StatusCode),
    /// Anything else (sizes that disagree, arguments out of range).
    Engine(EngineError),
}

impl From<EngineError> for Refusal {
    fn from(e: EngineError) -> Self {
        Refusal::Engine(e)
    }
}

/// Decodes a still WebP of `width` x `height` (the probed header's size) to RGB or RGBA (straight
/// alpha), resampled while decoding to `scaled` when given (each side at most the original's).
pub(crate) fn decode(
    bytes: &[u8],
    width: u32,
    height: u32,
    scaled: Option<(u32, u32)>,
) -> Result<Pixels, Refusal> {
    let mut config = WebPDecoderConfig::new()
        .map_err(|()| EngineError::corrupt(F, "libwebp refused its own decoder configuration"))?;
    // SAFETY: pointer and length come from a live slice that libwebp only reads; `config.input`
    // is a plain struct libwebp fills.
    let status = unsafe { WebPGetFeatures(bytes.as_ptr(), bytes.len(), &mut config.input) };
    if status != VP8StatusCode::VP8_STATUS_OK {
        return Err(Refusal::Failed(status));
    }
    let features = config.input;
    if features.has_animation != 0 {
        return Err(Refusal::Animated);
    }
    if (i64::from(features.width), i64::from(features.height))
        != (i64::from(width), i64::from(height))
    {
        return Err(
            EngineError::corrupt(F, "the bitstream's size differs from the header's").into(),
        );
    }
    let (out_w, out_h) = scaled.unwrap_or((width, height));
    if out_w == 0 || out_h == 0 || out_w > width || out_h > height {
        return Err(EngineError::corrupt(F, "scaled size out of range").into());
    }
    let channels: u8 = if features.has_alpha != 0 { 4 } else { 3 };
    let stride = out_w as usize * usize::from(channels);
    let len = stride
        .checked_mul(out_h as usize)
        .ok_or(EngineError::MemoryLimit)?;
    let (Ok(c_stride), Ok(c_w), Ok(c_h)) = (
        i32::try_from(stride),
        i32::try_from(out_w),
        i32::try_from(out_h),
    ) else {
        return Err(EngineError::MemoryLimit.into());
    };
    let mut data = vec![0u8; len];

    config.output.colorspace = if channels == 4 {
        WEBP_CSP_MODE::MODE_RGBA
    } else {
        WEBP_CSP_MODE::MODE_RGB
    };
    config.output.is_external_memory = 1;
    config.output.u.RGBA = WebPRGBABuffer {
        rgba: data.as_mut_ptr(),
        stride: c_stride,
        size: data.len(),
    };
    if scaled.is_some() {
        config.options.use_scaling = 1;
        config.options.scaled_width = c_w;
        config.options.scaled_height = c_h;
    }
    // SAFETY: `bytes` is only read; the output buffer is `data` (external memory, exact size and
    // stride given), alive and not otherwise borrowed until the call returns; libwebp checks the
    // buffer against the (scaled) size before writing into it.
    let status = unsafe { WebPDecode(bytes.as_ptr(), bytes.len(), &mut config) };
    // SAFETY: with external memory this only clears `private_memory` (never our `data`).
    unsafe { WebPFreeDecBuffer(&mut config.output) };
    if status != VP8StatusCode::VP8_STATUS_OK {
        return Err(Refusal::Failed(status));
    }
    if (config.output.width, config.output.height) != (c_w, c_h) {
        return Err(EngineError::corrupt(F, "libwebp decoded another size than asked").into());
    }
    Ok(Pixels::new(out_w, out_h, channels, data))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::transform;

    /// A photo-like test card: smooth gradients, hard edges and fine stripes, as lossy WebP.
    fn card(width: u32, height: u32, alpha: bool) -> (Vec<u8>, Vec<u8>) {
        let c = if alpha { 4 } else { 3 };
        let mut px = Vec::with_capacity((width * height * c) as usize);
        for y in 0..height {
            for x in 0..width {
                let stripe = if (x / 3) % 2 == 0 { 40 } else { 0 };
                let disc = (x as i64 - 300).pow(2) + (y as i64 - 200).pow(2) < 120 * 120;
                px.push(((x * 255) / width) as u8 / 2 + stripe);
                px.push(if disc {
                    230
                } else {
                    ((y * 255) / height) as u8
                });
                px.push(((x + y) % 256) as u8 / 2 + 60);
                if alpha {
                    px.push(if x < width / 2 { 255 } else { 128 });
                }
            }
        }
        let layout = if alpha {
            webp::PixelLayout::Rgba
        } else {
            webp::PixelLayout::Rgb
        };
        let encoded = webp::Encoder::new(&px, layout, width, height)
            .encode_simple(false, 90.0)
            .unwrap()
            .to_vec();
        (encoded, px)
    }

    fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(&x, &y)| f64::from(x.abs_diff(y)))
            .sum::<f64>()
            / a.len() as f64
    }

    #[test]
    fn a_full_size_decode_matches_the_pure_rust_decoder() {
        let (file, _) = card(640, 480, false);
        let ours = decode(&file, 640, 480, None).unwrap();
        let theirs = image::load_from_memory_with_format(&file, image::ImageFormat::WebP)
            .unwrap()
            .into_rgb8();
        assert_eq!((ours.width, ours.height, ours.channels), (640, 480, 3));
        assert!(mean_abs_diff(&ours.data, theirs.as_raw()) < 0.5);
    }

    #[test]
    fn a_scaled_decode_matches_a_full_decode_resampled_to_the_same_size() {
        for alpha in [false, true] {
            let (file, _) = card(640, 480, alpha);
            let full = decode(&file, 640, 480, None).unwrap();
            let scaled = decode(&file, 640, 480, Some((213, 160))).unwrap();
            assert_eq!((scaled.width, scaled.height), (213, 160));
            assert_eq!(scaled.channels, full.channels);
            let mut resizer = fast_image_resize::Resizer::new();
            let reference = transform::resize(&mut resizer, &full, 213, 160).unwrap();
            // Area averaging (libwebp) against Lanczos3 (ours): same picture, softer edges.
            let d = mean_abs_diff(&scaled.data, &reference.data);
            assert!(d < 3.0, "alpha {alpha}: mean difference {d}");
            if alpha {
                // The half-transparent right side stays half transparent.
                let a = |x: usize, y: usize| scaled.data[(y * 213 + x) * 4 + 3];
                assert_eq!(a(10, 80), 255);
                assert!(a(200, 80).abs_diff(128) <= 1);
            }
        }
    }

    #[test]
    fn sizes_that_disagree_with_the_header_or_upscale_are_refused() {
        let (file, _) = card(64, 48, false);
        assert!(matches!(
            decode(&file, 65, 48, None),
            Err(Refusal::Engine(_))
        ));
        assert!(matches!(
            decode(&file, 64, 48, Some((128, 96))),
            Err(Refusal::Engine(_))
        ));
        assert!(matches!(
            decode(&file, 64, 48, Some((0, 1))),
            Err(Refusal::Engine(_))
        ));
    }

    #[test]
    fn truncated_or_broken_input_gives_a_status_not_a_crash() {
        let (file, _) = card(320, 240, false);
        for cut in [0, 10, 30, file.len() / 2, file.len() - 1] {
            match decode(&file[..cut], 320, 240, Some((100, 75))) {
                Err(Refusal::Failed(_) | Refusal::Engine(_)) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        // The VP8 key frame's start code (9d 01 2a) broken: libwebp's status, no pixels.
        let mut broken = file.clone();
        assert_eq!(&broken[23..26], [0x9d, 0x01, 0x2a]);
        broken[23..26].fill(0);
        assert!(matches!(
            decode(&broken, 320, 240, None),
            Err(Refusal::Failed(_))
        ));
    }
}
