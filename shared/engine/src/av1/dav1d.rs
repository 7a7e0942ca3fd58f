//! AV1 still-picture decoding (AVIF originals) with rav1d, the memory-safe Rust port of dav1d
//! (BSD-2-Clause; its SIMD assembly, dav1d's, is built by nasm on x86-64 only: its aarch64 files do not
//! build with the zig toolchain of the Lambda cross-build): the planes are copied out as u16.
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

use super::{Frame, Layout};
use crate::EngineError;

const F: &str = "avif";
/// dav1d's "try again" result: -EAGAIN.
const EAGAIN: i32 = -11;
/// dav1d's result for a frame over its `frame_size_limit`: -ERANGE.
const ERANGE: i32 = -34;

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
    // separate parsing pass and coefficient buffer (budgeted in `decode::budget::working_set`): +22% time
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(decode(b"\x12\x00\x0a\x0b\x00\x00\x00", (1024, 1024)).is_err());
        assert!(decode(b"", (1024, 1024)).is_err());
    }
}
