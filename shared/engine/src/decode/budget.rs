//! How large a decode will be, from the header alone: the shrink-on-load rules (the headroom each
//! JPEG DCT scale keeps over the largest output) and [`working_set`], the estimated peak bytes
//! of the decode and the first resampling from it, checked against the budget before any pixel
//! buffer exists.

use crate::probe::Header;
use crate::{ContentType, EngineError, Limits};

/// Shrink-on-load (JPEG DCT scaling at 1/8 and 1/4, libwebp's scaled WebP decode) keeps the
/// decode's longest edge at least this multiple of the largest output's, so the final resampling
/// still has detail to work with; a smaller output resamples from a larger one already made when
/// that one has this much headroom over it. Chosen by measurement (`make bench`'s headroom sweep,
/// BENCHMARKS.md): the fastest rule whose outputs are as good as sharp's (DSSIM) in every cell.
pub const HEADROOM: f32 = 1.25;

/// The headroom a JPEG decoded at 1/2 scale keeps. Measured on the benchmark's 12 MP photo, a
/// 1600 px output from the 1/2-scale decode (1.44x headroom) has about twice the DSSIM of one from
/// the full-size decode (0.0043 vs 0.0023), where sharp decodes at full size; at 1/4 scale the
/// same headroom stays better than sharp's output. Chosen by the same sweep.
pub const HALF_SCALE_HEADROOM: f32 = 2.0;

/// The headroom a JPEG decoded at 1/8 scale keeps. That decode is each 8x8 block's mean (the DC
/// coefficient alone), i.e. a box filter, so resampling it by less than about 2x leaves the box's
/// aliasing in the output: measured on the benchmark's 4 MP photo, a 200 px output from the
/// 1/8-scale decode (1.67x headroom) has a DSSIM ~2x that of one from the 1/4-scale decode,
/// and worse than sharp's. Chosen by the same sweep.
pub const EIGHTH_SCALE_HEADROOM: f32 = 2.0;

/// The headroom each JPEG DCT scale must keep over the largest output (see [`HEADROOM`],
/// [`HALF_SCALE_HEADROOM`], [`EIGHTH_SCALE_HEADROOM`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ScaleHeadroom {
    pub eighth: f32,
    pub quarter: f32,
    pub half: f32,
}

/// The JPEG DCT scale (1/8, 1/4, 1/2 or 1, as a denominator) for outputs whose largest has
/// `largest` px on its longest edge: the smallest whose longest edge keeps that scale's headroom
/// times it.
pub(crate) fn jpeg_scale(long: u32, largest: u32, headroom: ScaleHeadroom) -> u32 {
    let need = |h: f32| (f64::from(largest.min(long)) * f64::from(h)).ceil();
    [
        (8u32, headroom.eighth),
        (4, headroom.quarter),
        (2, headroom.half),
    ]
    .into_iter()
    .find(|&(d, h)| f64::from(long.div_ceil(d)) >= need(h))
    .map_or(1, |(d, _)| d)
}

/// Refuses, before anything is decoded, a decode whose estimated peak ([`working_set`]) is over
/// the budget ([`Limits::max_decode_bytes`]); the error names the frame when one counts at its
/// own size.
pub(crate) fn check_budget(
    header: &Header,
    largest: u32,
    min_long: u32,
    limits: &Limits,
) -> Result<(), EngineError> {
    let needed = working_set(header, largest, min_long);
    if needed <= limits.max_decode_bytes {
        return Ok(());
    }
    const MIB: u64 = 1024 * 1024;
    let (needed_mib, budget_mib) = (needed.div_ceil(MIB), limits.max_decode_bytes / MIB);
    Err(match header.frame {
        Some((frame_width, frame_height)) => EngineError::FrameBudget {
            width: header.width,
            height: header.height,
            frame_width,
            frame_height,
            needed_mib,
            budget_mib,
        },
        None => EngineError::DecodeBudget {
            width: header.width,
            height: header.height,
            needed_mib,
            budget_mib,
        },
    })
}

/// The estimated peak bytes of decoding `header` with shrink-on-load to at least `min_long` px on
/// the longest edge, for outputs whose largest has `largest` px there, and of the first resampling
/// from that decode: the 8-bit pixels at the size the decoder produces, what the decoder holds
/// beside them, and the resampler's buffers (for RGBA a premultiplied copy of its source; the
/// horizontal pass; the output). A scaled WebP decode is budgeted at full size (libwebp's
/// lossless decoder holds the whole frame). What a decoder holds at full size whatever the
/// output scale is counted at that size: a multi-scan JPEG's coefficients
/// ([`Header::jpeg_full_buffer`]), a lossless JPEG (never scaled), a GIF frame or an AVIF tile
/// or alpha plane larger than the canvas ([`Header::frame`]).
fn working_set(header: &Header, largest: u32, min_long: u32) -> u64 {
    let (mut w, mut h) = (u64::from(header.width), u64::from(header.height));
    let frame = header
        .frame
        .map_or(0, |(fw, fh)| u64::from(fw).saturating_mul(u64::from(fh)));
    let mut beside = 0u64;
    let per_pixel: u64 = match header.content_type {
        ContentType::Jpeg => {
            let long = header.width.max(header.height);
            let d = if header.jpeg_lossless {
                1
            } else {
                jpeg_denominator(long, min_long)
            };
            (w, h) = (w.div_ceil(d), h.div_ceil(d));
            beside = header.jpeg_full_buffer;
            // jpeg-decoder (the build without `turbo`) decodes lossless JPEG through 16-bit
            // planes and copies of them: measured at about 5 bytes a sample beside the result
            // (a 2800x2800 RGB file peaked at 139 MiB rendering thumbnails; `tests/bombs.rs`).
            if header.jpeg_lossless && cfg!(not(feature = "turbo")) {
                beside = beside.saturating_add(
                    w.saturating_mul(h)
                        .saturating_mul(u64::from(header.jpeg_components) * 5),
                );
            }
            // CMYK is decoded, then converted to RGB while both are held.
            if header.jpeg_components == 4 {
                4 + 3
            } else {
                3
            }
        }
        // Decoded straight into the buffer of the final 8-bit size (see `decode_png`).
        ContentType::Png => u64::from(header.decoded_channels),
        // The image crate's decoders (and libwebp): a canvas or frame buffer beside the RGBA result;
        // a GIF frame that is not the canvas is decoded into a buffer of its own (RGBA) first.
        ContentType::Gif | ContentType::Webp => {
            beside = frame.saturating_mul(4);
            8
        }
        // While copying out: rav1d's picture and our u16 copy of it, up to 6 + 6 bytes a pixel
        // (4:4:4, 10-12 bit), and the coefficient buffer of rav1d's frame threading (its two frame
        // contexts, see `av1`), up to 12 more (4:4:4 high bit depth; 3 for 8-bit 4:2:0, measured
        // +32 MB on a 12 MP AVIF), plus its block info (< 1); then the u16 planes beside the RGB
        // result (6 + 3), plus alpha. Counted at the worst case: the container's `av1C` could
        // claim a lighter bitstream than the one rav1d decodes. A grid tile or alpha plane
        // declaring more pixels than the image is decoded at its own size (rav1d's frame size
        // limit is each item's `ispe`, see `decode_avif`).
        ContentType::Avif => {
            beside = frame.saturating_mul(25);
            25
        }
    };
    let c = u64::from(header.decoded_channels);
    let pixels = w.saturating_mul(h);
    let premultiplied = if c == 4 { pixels.saturating_mul(4) } else { 0 };
    let out = u64::from(largest).min(w.max(h));
    let horizontal = out.saturating_mul(w.max(h)).saturating_mul(c);
    let output = out.saturating_mul(out).saturating_mul(c);
    pixels
        .saturating_mul(per_pixel)
        .saturating_add(beside)
        .saturating_add(premultiplied)
        .saturating_add(horizontal)
        .saturating_add(output)
}

/// The JPEG DCT scale (1/8, 1/4, 1/2 or 1, as a denominator) libjpeg-turbo decodes at, and the
/// decode budget is checked at: the smallest whose longest edge still reaches `min_long`.
pub(super) fn jpeg_denominator(long: u32, min_long: u32) -> u64 {
    let want = u64::from(min_long.min(long));
    [8u64, 4, 2]
        .into_iter()
        .find(|&d| u64::from(long).div_ceil(d) >= want)
        .unwrap_or(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_jpeg_scale_keeps_the_headroom_of_its_rule() {
        let rule = |eighth, quarter, half| ScaleHeadroom {
            eighth,
            quarter,
            half,
        };
        let default = rule(2.0, 1.25, 2.0);
        // 12 MP (4619 px long): 1/8 = 578 px, 1/4 = 1155 px, 1/2 = 2310 px.
        assert_eq!(jpeg_scale(4619, 600, default), 4); // thumbnails: 1155 >= 750
        assert_eq!(jpeg_scale(4619, 200, default), 8); // 578 >= 400
        assert_eq!(jpeg_scale(4619, 300, default), 4); // 578 < 600; 1155 >= 375
        assert_eq!(jpeg_scale(4619, 300, rule(1.25, 1.25, 2.0)), 8); // 578 >= 375
        assert_eq!(jpeg_scale(4619, 1000, default), 2); // 1155 < 1250; 2310 >= 2000
        assert_eq!(jpeg_scale(4619, 1600, default), 1); // 2310 < 3200: full size
        assert_eq!(jpeg_scale(4619, 1600, rule(1.25, 1.25, 1.25)), 2);
        assert_eq!(jpeg_scale(4619, 600, rule(2.0, 2.0, 2.0)), 2);
        // Never more than the image: a tiny original at its own size.
        assert_eq!(jpeg_scale(100, 150, default), 1);
    }

    #[test]
    fn jpeg_decodes_are_budgeted_at_the_scale_the_decoder_picks() {
        assert_eq!(jpeg_denominator(4000, 1200), 2);
        assert_eq!(jpeg_denominator(4000, 400), 8);
        assert_eq!(jpeg_denominator(4000, 4096), 1);
        assert_eq!(jpeg_denominator(100, 50), 2);
    }
}
