//! AV1 still pictures (AVIF originals): [`decode`] through rav1d, the memory-safe Rust port of
//! dav1d ([`dav1d`], the engine's one module with `unsafe` besides `libwebp`), then YUV to 8-bit
//! RGB and alpha ([`yuv`]).

mod dav1d;
mod yuv;

pub(crate) use dav1d::decode;
pub(crate) use yuv::{to_alpha, to_rgb};

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
    /// The horizontal and vertical chroma subsampling, as shifts (4:2:0: (1, 1)).
    pub(super) fn chroma_shift(&self) -> (u32, u32) {
        match self.layout {
            Layout::I420 => (1, 1),
            Layout::I422 => (1, 0),
            Layout::I400 | Layout::I444 => (0, 0),
        }
    }
}
