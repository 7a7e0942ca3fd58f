//! AV1 still-picture decoding (AVIF originals) with rav1d, the memory-safe Rust port of dav1d
//! (BSD-2-Clause; its SIMD assembly, dav1d's, is built by nasm on x86-64 only: its aarch64 files do not
//! build with the zig toolchain of the Lambda cross-build), then YUV to 8-bit RGB.
//!
//! rav1d's public interface is dav1d's C API, so this module is the engine's one place with
//! `unsafe`: each block calls one of those functions with pointers to values owned here, and
//! every picture and context is released by a guard, also on error paths.

#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::ptr::NonNull;

use rav1d::include::dav1d::data::Dav1dData;
use rav1d::include::dav1d::dav1d::{Dav1dContext, Dav1dSettings};
use rav1d::include::dav1d::headers::{
    DAV1D_PIXEL_LAYOUT_I400, DAV1D_PIXEL_LAYOUT_I420, DAV1D_PIXEL_LAYOUT_I422,
};
use rav1d::include::dav1d::picture::Dav1dPicture;
use rav1d::src::lib::{
    dav1d_close, dav1d_data_create, dav1d_data_unref, dav1d_default_settings, dav1d_get_picture,
    dav1d_open, dav1d_picture_unref, dav1d_send_data,
};

use super::EngineError;

const F: &str = "avif";
/// dav1d's "try again" result: -EAGAIN.
const EAGAIN: i32 = -11;
/// dav1d's result for a frame over its `frame_size_limit`: -ERANGE.
const ERANGE: i32 = -34;

/// Chroma subsampling of a decoded picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Luma only (4:0:0).
    I400,
    /// 4:2:0.
    I420,
    /// 4:2:2.
    I422,
    /// 4:4:4.
    I444,
}

/// One decoded AV1 frame: planes copied out of rav1d, samples widened to u16.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub width: u32,
    pub height: u32,
    pub bit_depth: u8,
    pub layout: Layout,
    /// Y, then U and V (absent for 4:0:0), each `plane_width(i)` x `plane_height(i)`.
    pub planes: Vec<Vec<u16>>,
    /// CICP from the sequence header: matrix coefficients and full range.
    pub matrix: u16,
    pub full_range: bool,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Frame({}x{}, {} bit, {:?})",
            self.width, self.height, self.bit_depth, self.layout
        )
    }
}

impl Frame {
    fn chroma_shift(&self) -> (u32, u32) {
        match self.layout {
            Layout::I420 => (1, 1),
            Layout::I422 => (1, 0),
            Layout::I400 | Layout::I444 => (0, 0),
        }
    }
}

struct Context(Option<Dav1dContext>);

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: `self.0` is a context from `dav1d_open` (or None, which dav1d_close ignores);
        // dav1d_close takes it out and leaves None.
        unsafe { dav1d_close(NonNull::new(&mut self.0)) };
    }
}

struct Picture(Dav1dPicture);

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: a default (empty) picture or one filled by dav1d_get_picture; unref on an empty
        // picture is a no-op.
        unsafe { dav1d_picture_unref(NonNull::new(&mut self.0)) };
    }
}

struct Data(Dav1dData);

impl Drop for Data {
    fn drop(&mut self) {
        // SAFETY: data from dav1d_data_create (or default); unref releases what remains.
        unsafe { dav1d_data_unref(NonNull::new(&mut self.0)) };
    }
}

fn failed(what: &str, code: i32, (w, h): (u32, u32)) -> EngineError {
    if code == ERANGE {
        return EngineError::corrupt(
            F,
            format!(
                "the av1 bitstream codes a frame larger than the {w}x{h} its container declares \
                 (ispe), the decoder's frame size limit"
            ),
        );
    }
    EngineError::corrupt(
        F,
        format!("the av1 decoder failed to {what} (error {code})"),
    )
}

/// Decodes the AV1 sample (OBUs) of one still image whose container declares `declared`
/// (`ispe`): rav1d refuses a frame header with more pixels than that (its `frame_size_limit`)
/// before it allocates the picture, so the bitstream cannot make the decode larger than the
/// header estimate counted.
pub(crate) fn decode(obus: &[u8], declared: (u32, u32)) -> Result<Frame, EngineError> {
    if obus.is_empty() {
        return Err(EngineError::corrupt(F, "the image item is empty"));
    }
    let mut settings = MaybeUninit::<Dav1dSettings>::uninit();
    // SAFETY: dav1d_default_settings writes a whole Dav1dSettings to the pointer.
    unsafe { dav1d_default_settings(NonNull::from(&mut settings).cast()) };
    // SAFETY: initialised just above.
    let mut settings = unsafe { settings.assume_init() };
    // Two frame contexts, not one: rav1d 1.1 aborts the process on any frame-decode error when it
    // has a single frame context (`max_frame_delay = 1`): its error path unwraps a frame header the
    // failed decode already released, and the panic cannot unwind out of its `extern "C"` API
    // (memorysafety/rav1d#1497; fixes proposed in #1496 and #1503, not released). With two, a decode
    // error comes back as an error code from the frame worker. The price is frame threading's
    // separate parsing pass and coefficient buffer (budgeted in `decode::working_set`): +22% time
    // on one core for a 12 MP AVIF (README). Back to one context when a release has the fix.
    settings.n_threads = 2;
    settings.max_frame_delay = 2;
    settings.all_layers = 0;
    // 0 would mean no limit; an ispe of 0 is refused by the container parser anyway.
    settings.frame_size_limit = u32::try_from(u64::from(declared.0) * u64::from(declared.1))
        .unwrap_or(u32::MAX)
        .max(1);

    let mut ctx = Context(None);
    // SAFETY: both pointers are to live locals; on success ctx.0 holds the new context.
    let r = unsafe { dav1d_open(NonNull::new(&mut ctx.0), NonNull::new(&mut settings)) };
    if r.0 != 0 {
        return Err(failed("start", r.0, declared));
    }
    let Some(context) = ctx.0 else {
        return Err(failed("start", 0, declared));
    };

    let mut data = Data(Dav1dData::default());
    // SAFETY: dav1d_data_create allocates `len` bytes owned by `data` and returns them (or null).
    let buf = unsafe { dav1d_data_create(NonNull::new(&mut data.0), obus.len()) };
    if buf.is_null() {
        return Err(EngineError::MemoryLimit);
    }
    // SAFETY: `buf` points to `obus.len()` writable bytes just allocated; the regions differ.
    unsafe { std::ptr::copy_nonoverlapping(obus.as_ptr(), buf, obus.len()) };

    let mut picture = Picture(Dav1dPicture::default());
    // A still image is one temporal unit: send until consumed, taking pictures when asked.
    let mut got = false;
    let mut drains = 0;
    for _ in 0..64 {
        if data.0.sz > 0 {
            // SAFETY: live context and data; dav1d consumes from `data` and updates it.
            let r = unsafe { dav1d_send_data(Some(context), NonNull::new(&mut data.0)) };
            if r.0 != 0 && r.0 != EAGAIN {
                return Err(failed("read the image data", r.0, declared));
            }
        }
        // SAFETY: live context; the picture is written into `picture` (released by its guard).
        let r = unsafe { dav1d_get_picture(Some(context), NonNull::new(&mut picture.0)) };
        if r.0 == 0 {
            got = true;
            break;
        }
        if r.0 != EAGAIN {
            return Err(failed("decode the image", r.0, declared));
        }
        if data.0.sz == 0 {
            // All sent: the frame may still be in a frame worker, and the next get after one
            // that found nothing drains the workers (waiting for them). Still nothing: no picture.
            drains += 1;
            if drains > 2 {
                break;
            }
        }
    }
    if !got {
        return Err(EngineError::corrupt(F, "the image data holds no picture"));
    }
    copy_out(&picture.0)
}

fn copy_out(pic: &Dav1dPicture) -> Result<Frame, EngineError> {
    let (w, h) = (pic.p.w, pic.p.h);
    let (Ok(width), Ok(height)) = (u32::try_from(w), u32::try_from(h)) else {
        return Err(EngineError::corrupt(F, "the decoded size is out of range"));
    };
    if width == 0 || height == 0 {
        return Err(EngineError::corrupt(F, "the decoded image is empty"));
    }
    let layout = match pic.p.layout {
        DAV1D_PIXEL_LAYOUT_I400 => Layout::I400,
        DAV1D_PIXEL_LAYOUT_I420 => Layout::I420,
        DAV1D_PIXEL_LAYOUT_I422 => Layout::I422,
        _ => Layout::I444,
    };
    let bit_depth = u8::try_from(pic.p.bpc).unwrap_or(0);
    if !matches!(bit_depth, 8 | 10 | 12) {
        return Err(EngineError::Unsupported(format!(
            "avif with {} bits per sample",
            pic.p.bpc
        )));
    }
    let (matrix, full_range) = match pic.seq_hdr {
        // SAFETY: the sequence header lives as long as the picture, which we hold.
        Some(seq) => unsafe {
            let s = seq.as_ref();
            (u16::try_from(s.mtrx).unwrap_or(2), s.color_range != 0)
        },
        None => (2, false),
    };
    let mut frame = Frame {
        width,
        height,
        bit_depth,
        layout,
        planes: Vec::new(),
        matrix,
        full_range,
    };
    let (sx, sy) = frame.chroma_shift();
    let planes = if layout == Layout::I400 { 1 } else { 3 };
    for i in 0..planes {
        let (pw, ph) = if i == 0 {
            (width, height)
        } else {
            ((width + sx) >> sx, (height + sy) >> sy)
        };
        let stride = pic.stride[usize::from(i > 0)];
        let Some(ptr) = pic.data[i] else {
            return Err(EngineError::corrupt(F, "a decoded plane is missing"));
        };
        let bytes_per_sample = if bit_depth > 8 { 2 } else { 1 };
        let row_bytes = pw as usize * bytes_per_sample;
        let Ok(stride) = usize::try_from(stride) else {
            return Err(EngineError::corrupt(F, "a decoded plane runs backwards"));
        };
        if stride < row_bytes {
            return Err(EngineError::corrupt(F, "a decoded plane is too narrow"));
        }
        let mut plane = Vec::with_capacity(pw as usize * ph as usize);
        for y in 0..ph as usize {
            // SAFETY: dav1d guarantees `ph` rows of `stride` bytes, each holding `pw` samples of
            // `bytes_per_sample` (u16 aligned for high bit depth), alive while we hold `pic`.
            let row = unsafe {
                std::slice::from_raw_parts(ptr.as_ptr().cast::<u8>().add(y * stride), row_bytes)
            };
            if bytes_per_sample == 1 {
                plane.extend(row.iter().map(|&v| u16::from(v)));
            } else {
                plane.extend(
                    row.chunks_exact(2)
                        .map(|c| u16::from_ne_bytes([c[0], c[1]])),
                );
            }
        }
        frame.planes.push(plane);
    }
    Ok(frame)
}

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

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(decode(b"\x12\x00\x0a\x0b\x00\x00\x00", (1024, 1024)).is_err());
        assert!(decode(b"", (1024, 1024)).is_err());
    }
}
