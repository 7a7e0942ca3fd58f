//! YUV to 8-bit RGB (CICP matrix coefficients, limited or full range, chroma upsampled
//! bilinearly as libavif does) and an alpha plane to 8-bit alpha.

use super::Frame;

/// Kr and Kb of a CICP matrix (H.273 table 4); unspecified (2) and unknown ones as BT.601, like
/// libavif.
fn kr_kb(matrix: u16) -> (f32, f32) {
    match matrix {
        1 => (0.2126, 0.0722),
        4 => (0.30, 0.11),
        7 => (0.212, 0.087),
        9 | 10 => (0.2627, 0.0593),
        _ => (0.299, 0.114),
    }
}

/// Where output position `pos` reads chroma along one axis subsampled by `shift` (0 or 1): two
/// sample indexes and the weight of the second. Chroma samples sit centred between luma pairs
/// (bilinear, like libavif's default upsampling).
fn chroma_taps(pos: usize, shift: u32, len: usize) -> (usize, usize, f32) {
    if shift == 0 {
        return (pos, pos, 0.0);
    }
    let last = len.saturating_sub(1);
    let half = pos / 2;
    if pos % 2 == 0 {
        (half.saturating_sub(1).min(last), half.min(last), 0.75)
    } else {
        (half.min(last), (half + 1).min(last), 0.25)
    }
}

/// Converts a frame to 8-bit RGB (3 channels), with `matrix`/`full_range` overriding the
/// sequence header's when the container says so (`colr`/`nclx`). Subsampled chroma is
/// upsampled bilinearly.
pub(crate) fn to_rgb(frame: &Frame, matrix: Option<u16>, full_range: Option<bool>) -> Vec<u8> {
    let matrix = matrix.unwrap_or(frame.matrix);
    let full = full_range.unwrap_or(frame.full_range);
    let max = f32::from((1u16 << frame.bit_depth) - 1);
    let scale = f32::from(1u16 << (frame.bit_depth - 8));
    let (y_off, y_range, c_range) = if full {
        (0.0, max, max)
    } else {
        (16.0 * scale, 219.0 * scale, 224.0 * scale)
    };
    let c_mid = f32::from(1u16 << (frame.bit_depth - 1));
    let (kr, kb) = kr_kb(matrix);
    let kg = 1.0 - kr - kb;
    let (cr_r, cb_b) = (2.0 * (1.0 - kr), 2.0 * (1.0 - kb));
    let (cb_g, cr_g) = (cb_b * kb / kg, cr_r * kr / kg);
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (sx, sy) = frame.chroma_shift();
    let cw = (w + sx as usize) >> sx;
    let ch = (h + sy as usize) >> sy;
    let mut out = Vec::with_capacity(w * h * 3);
    let to8 = |v: f32| (v * 255.0 + 0.5).clamp(0.0, 255.0) as u8;
    let luma = &frame.planes[0];
    let x_taps: Vec<(usize, usize, f32)> = (0..w).map(|x| chroma_taps(x, sx, cw)).collect();
    for y in 0..h {
        let luma_row = &luma[y * w..(y + 1) * w];
        if frame.planes.len() < 3 {
            for &l in luma_row {
                let g = to8((f32::from(l) - y_off) / y_range);
                out.extend_from_slice(&[g, g, g]);
            }
            continue;
        }
        let (r0, r1, wy) = chroma_taps(y, sy, ch);
        let (u, v) = (&frame.planes[1], &frame.planes[2]);
        let sample = |plane: &[u16], (c0, c1, wx): (usize, usize, f32)| {
            let top =
                f32::from(plane[r0 * cw + c0]) * (1.0 - wx) + f32::from(plane[r0 * cw + c1]) * wx;
            let bottom =
                f32::from(plane[r1 * cw + c0]) * (1.0 - wx) + f32::from(plane[r1 * cw + c1]) * wx;
            top * (1.0 - wy) + bottom * wy
        };
        for (x, &l) in luma_row.iter().enumerate() {
            let yv = (f32::from(l) - y_off) / y_range;
            let (us, vs) = (sample(u, x_taps[x]), sample(v, x_taps[x]));
            if matrix == 0 {
                // Identity (GBR): Y is G, U is B, V is R.
                let n = |s: f32| (s - y_off) / y_range;
                out.extend_from_slice(&[to8(n(vs)), to8(yv), to8(n(us))]);
                continue;
            }
            let cb = (us - c_mid) / c_range;
            let cr = (vs - c_mid) / c_range;
            let r = yv + cr_r * cr;
            let g = yv - cb_g * cb - cr_g * cr;
            let b = yv + cb_b * cb;
            out.extend_from_slice(&[to8(r), to8(g), to8(b)]);
        }
    }
    out
}

/// The luma plane of an alpha frame as 8-bit alpha (limited range expanded when flagged).
pub(crate) fn to_alpha(frame: &Frame) -> Vec<u8> {
    let shift = frame.bit_depth - 8;
    let luma = &frame.planes[0];
    if frame.full_range {
        luma.iter().map(|&v| (v >> shift) as u8).collect()
    } else {
        let scale = f32::from(1u16 << shift);
        luma.iter()
            .map(|&v| {
                let a = (f32::from(v) - 16.0 * scale) / (219.0 * scale);
                (a * 255.0 + 0.5).clamp(0.0, 255.0) as u8
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::av1::Layout;

    fn frame(y: u16, u: u16, v: u16, full_range: bool) -> Frame {
        Frame {
            width: 2,
            height: 2,
            bit_depth: 8,
            layout: Layout::I420,
            planes: vec![vec![y; 4], vec![u], vec![v]],
            matrix: 1,
            full_range,
        }
    }

    #[test]
    fn limited_range_bt709_gray_and_primaries_convert_to_the_expected_rgb() {
        assert_eq!(
            &to_rgb(&frame(16, 128, 128, false), None, None)[..3],
            [0, 0, 0]
        );
        assert_eq!(
            &to_rgb(&frame(235, 128, 128, false), None, None)[..3],
            [255, 255, 255]
        );
        // BT.709 limited-range red: Y 63, Cb 102, Cr 240.
        let red = to_rgb(&frame(63, 102, 240, false), None, None);
        assert!(red[0] > 250 && red[1] < 5 && red[2] < 5, "{red:?}");
    }
}
