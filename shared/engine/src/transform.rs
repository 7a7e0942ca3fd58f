//! Pixel operations between decode and encode: SIMD resampling (fast_image_resize, Lanczos3),
//! EXIF orientation, flattening alpha on white, and the thumbhash placeholder.

use base64::Engine as _;
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::decode::Pixels;
use super::EngineError;

fn pixel_type(channels: u8) -> PixelType {
    if channels == 4 {
        PixelType::U8x4
    } else {
        PixelType::U8x3
    }
}

/// Resamples to exactly `width` x `height` with Lanczos3 (alpha-aware for RGBA).
pub(crate) fn resize(
    resizer: &mut Resizer,
    src: &Pixels,
    width: u32,
    height: u32,
) -> Result<Pixels, EngineError> {
    if (src.width, src.height) == (width, height) {
        return Ok(src.clone());
    }
    let fail = |e: &dyn std::fmt::Display| EngineError::Encode {
        format: "pixels",
        reason: format!("resize failed: {e}"),
    };
    let pt = pixel_type(src.channels);
    let src_view = ImageRef::new(src.width, src.height, &src.data, pt).map_err(|e| fail(&e))?;
    let mut dst = Image::new(width, height, pt);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    resizer
        .resize(&src_view, &mut dst, &options)
        .map_err(|e| fail(&e))?;
    Ok(Pixels::new(width, height, src.channels, dst.into_vec()))
}

/// Turns pixels stored with EXIF `orientation` (1-8) upright.
pub(crate) fn orient(src: Pixels, orientation: u8) -> Pixels {
    if !(2..=8).contains(&orientation) {
        return src;
    }
    let (w, h) = (src.width as usize, src.height as usize);
    let c = usize::from(src.channels);
    let (dw, dh) = if orientation >= 5 { (h, w) } else { (w, h) };
    let mut out = vec![0u8; src.data.len()];
    for dy in 0..dh {
        for dx in 0..dw {
            // Where display pixel (dx, dy) comes from in the stored image.
            let (sx, sy) = match orientation {
                2 => (w - 1 - dx, dy),
                3 => (w - 1 - dx, h - 1 - dy),
                4 => (dx, h - 1 - dy),
                5 => (dy, dx),
                6 => (dy, h - 1 - dx),
                7 => (w - 1 - dy, h - 1 - dx),
                _ => (w - 1 - dy, dx),
            };
            let s = (sy * w + sx) * c;
            let d = (dy * dw + dx) * c;
            out[d..d + c].copy_from_slice(&src.data[s..s + c]);
        }
    }
    Pixels::new(dw as u32, dh as u32, src.channels, out)
}

/// Composites RGBA over white, giving RGB (for JPEG). RGB passes through.
pub(crate) fn flatten_on_white(src: &Pixels) -> Pixels {
    if src.channels != 4 {
        return src.clone();
    }
    let mut data = Vec::with_capacity(src.data.len() / 4 * 3);
    for px in src.data.chunks_exact(4) {
        let a = u32::from(px[3]);
        for &v in &px[..3] {
            data.push(((u32::from(v) * a + 255 * (255 - a) + 127) / 255) as u8);
        }
    }
    Pixels::new(src.width, src.height, 3, data)
}

/// The thumbhash of upright pixels, base64 (standard alphabet, padded).
pub(crate) fn placeholder(resizer: &mut Resizer, src: &Pixels) -> Result<String, EngineError> {
    // Thumbhash takes at most 100x100 and keeps only low frequencies: 32 px on the longest edge
    // gives the same hash quality at a tenth of the cosine work.
    const EDGE: u64 = 32;
    let long = u64::from(src.width.max(src.height));
    let small = if long > EDGE {
        let scale = |side: u32| ((u64::from(side) * EDGE + long / 2) / long).max(1) as u32;
        resize(resizer, src, scale(src.width), scale(src.height))?
    } else {
        src.clone()
    };
    let rgba: Vec<u8> = if small.channels == 4 {
        small.data
    } else {
        small
            .data
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect()
    };
    let hash = thumbhash::rgba_to_thumb_hash(small.width as usize, small.height as usize, &rgba);
    Ok(base64::engine::general_purpose::STANDARD.encode(hash))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A 3x2 RGB image whose pixels are numbered 0-5 in the red channel, row by row.
    fn numbered() -> Pixels {
        let data = (0u8..6).flat_map(|i| [i, 0, 0]).collect();
        Pixels::new(3, 2, 3, data)
    }

    fn reds(p: &Pixels) -> Vec<u8> {
        p.data.chunks_exact(3).map(|c| c[0]).collect()
    }

    #[test]
    fn each_orientation_maps_stored_pixels_to_their_upright_place() {
        // Stored:  0 1 2
        //          3 4 5
        let cases: [(u8, (u32, u32), [u8; 6]); 8] = [
            (1, (3, 2), [0, 1, 2, 3, 4, 5]),
            (2, (3, 2), [2, 1, 0, 5, 4, 3]),
            (3, (3, 2), [5, 4, 3, 2, 1, 0]),
            (4, (3, 2), [3, 4, 5, 0, 1, 2]),
            (5, (2, 3), [0, 3, 1, 4, 2, 5]),
            (6, (2, 3), [3, 0, 4, 1, 5, 2]),
            (7, (2, 3), [5, 2, 4, 1, 3, 0]),
            (8, (2, 3), [2, 5, 1, 4, 0, 3]),
        ];
        for (orientation, size, expected) in cases {
            let out = orient(numbered(), orientation);
            assert_eq!((out.width, out.height), size, "orientation {orientation}");
            assert_eq!(reds(&out), expected, "orientation {orientation}");
        }
    }

    #[test]
    fn transparent_pixels_flatten_to_white_and_opaque_ones_keep_their_colour() {
        let rgba = Pixels::new(3, 1, 4, vec![10, 20, 30, 0, 10, 20, 30, 255, 0, 0, 0, 128]);
        let rgb = flatten_on_white(&rgba);
        assert_eq!(rgb.channels, 3);
        assert_eq!(rgb.data, [255, 255, 255, 10, 20, 30, 127, 127, 127]);
    }

    #[test]
    fn resizing_keeps_a_flat_colour_and_hits_the_requested_size() {
        let src = Pixels::new(400, 300, 3, [200, 100, 50].repeat(400 * 300));
        let out = resize(&mut Resizer::new(), &src, 40, 30).unwrap();
        assert_eq!(
            (out.width, out.height, out.data.len()),
            (40, 30, 40 * 30 * 3)
        );
        assert!(out.data.chunks_exact(3).all(|p| p == [200, 100, 50]));
    }

    #[test]
    fn placeholders_are_base64_thumbhashes_that_decode_back() {
        let src = Pixels::new(300, 150, 3, [0, 0, 255].repeat(300 * 150));
        let hash = placeholder(&mut Resizer::new(), &src).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(hash)
            .unwrap();
        let (r, g, b, a) = thumbhash::thumb_hash_to_average_rgba(&bytes).unwrap();
        assert!(b > 0.9 && r < 0.1 && g < 0.1 && a > 0.99, "{r} {g} {b} {a}");
        let ratio = thumbhash::thumb_hash_to_approximate_aspect_ratio(&bytes).unwrap();
        assert!((ratio - 2.0).abs() < 0.3, "{ratio}");
    }
}
