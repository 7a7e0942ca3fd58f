//! The image engine: bytes in, bytes out, no AWS types.
//!
//! [`probe()`] reads format, size and orientation from the header alone. [`render`] decodes an
//! original **once** and produces every requested [`Spec`] from that decode, plus a thumbhash
//! placeholder from the smallest output.
//!
//! # Pipeline
//! 1. Header: format from magic bytes ([`ContentType::sniff`]), stored size, EXIF orientation.
//!    [`Limits`] are checked here, before any pixel buffer exists: pixel count and side, and the
//!    decode budget (half the function's memory, [`Limits::for_memory_mb`]) against an estimate of
//!    the decode's peak from the dimensions, channels and JPEG scale.
//! 2. Decode once, shrinking on load: a JPEG is decoded in the DCT domain at the smallest of
//!    1/8, 1/4, 1/2 or 1 that still leaves at least [`HEADROOM`] times the largest output's
//!    longest edge ([`HALF_SCALE_HEADROOM`] at 1/2, [`EIGHTH_SCALE_HEADROOM`] at 1/8, whose
//!    DC-only decode is a box filter; all chosen by measurement), so the final
//!    resampling has detail to work with. (libjpeg-turbo's other n/8
//!    scales lack SIMD and cost more than the next power of two.) A still WebP is scaled the same
//!    way while libwebp decodes it (feature `turbo`: its area-averaging rescaler on the YUV rows,
//!    to the smallest size reaching that edge). Other formats decode at full size.
//! 3. Per distinct output size, largest first: Lanczos3 resampling with SIMD (fast_image_resize,
//!    alpha-aware) from the smallest image already made that still has that headroom (the 300 px
//!    thumbnail from the 600 px one), else from the decode. Then the EXIF orientation is applied
//!    to the small result (cheaper than rotating the big one), so outputs are upright.
//! 4. Colour: an embedded ICC profile (JPEG `APP2`, PNG `iCCP`, WebP `ICCP`, AVIF `colr`) or
//!    AVIF CICP colour is converted to sRGB on each resampled output (moxcms, perceptual).
//! 5. Encode: JPEG 4:2:0 with optimised Huffman tables (alpha flattened on white), WebP lossy
//!    (alpha kept), PNG (alpha kept), AVIF (feature `avif`: ravif/rav1e, speed 8).
//!
//! # Codec builds
//! - feature `turbo` (in this crate's and `safelight-shared`'s default features): libjpeg-turbo (turbojpeg) for
//!   JPEG decode and encode, libwebp (webp) for WebP decode and lossy encode, and the SIMD assembly of
//!   rav1e (rav1d uses its x86-64 assembly in every build). Needs a C toolchain, cmake and nasm.
//! - without it, pure Rust: jpeg-decoder (scaled decode at 1/8, 1/4, 1/2) and jpeg-encoder; WebP
//!   output is **lossless** (image-webp has no lossy encoder), so bigger, and `quality` is unused.
//!
//! PNG and GIF originals decode with pure-Rust decoders in both builds; WebP with libwebp when
//! `turbo` is on (animations, and the pure build, with image-webp); AVIF originals with rav1d
//! (the Rust port of dav1d) in both builds.
//!
//! # What is kept and what is not
//! - Metadata: nothing is copied. Outputs carry no EXIF, GPS, XMP, ICC profile or embedded
//!   thumbnail; the orientation is baked into the pixels.
//! - Colour: outputs are sRGB, untagged (what browsers assume). An original with an ICC profile
//!   (Display P3 from iPhones, Adobe RGB from cameras, gray profiles) is converted, so it looks
//!   the same as the original in a colour-managed viewer. A profile that cannot be used
//!   (unreadable, CMYK, a device link) is logged and the pixels are taken as sRGB: colour is
//!   never a reason to fail an image. HDR AVIF (PQ/HLG) is not tone-mapped.
//! - Gray originals become RGB; 16-bit PNG is reduced to 8 bits (high byte of each sample); CMYK/YCCK JPEG is converted to RGB
//!   assuming Adobe-inverted CMYK (what Photoshop and libjpeg write), without a profile.
//! - Animated GIF/WebP: the first frame (composited on the canvas).
//! - Alpha: kept for PNG, WebP and AVIF outputs, flattened on white for JPEG.
//! - AVIF originals: the primary item, also as a grid of tiles, 8-12 bits, any subsampling,
//!   its alpha item, `irot`/`imir` orientation. 4:2:0/4:2:2 chroma is upsampled bilinearly
//!   (as libavif does).
//! - HEIC/HEIF (HEVC) originals are recognised and refused as `unsupported`, with the reason:
//!   the only HEVC decoders that build statically for Lambda are libde265/ffmpeg (LGPL: static
//!   linking obliges shipping relinkable objects) and HEVC decoding is patent-licensed (Access
//!   Advance, Via LA); see the README's format notes.
//!
//! # Safety
//! Every failure is an [`EngineError`], all permanent. Decoders run under `catch_unwind` as a last
//! line of defence; the `fuzz/` target feeds arbitrary bytes to `probe` and `render` under the
//! limits of a 1024 MB function, with libFuzzer's `-malloc_limit_mb` at the decode budget. Memory
//! is bounded from the headers: an image whose estimated decode peak exceeds
//! [`Limits::max_decode_bytes`] is refused as `too_large` before decoding, counting what a
//! decoder holds at full size whatever the output scale (a multi-scan JPEG's coefficients, a
//! lossless JPEG, a GIF frame other than its screen, an AVIF tile or alpha plane larger than the
//! image); 16-bit PNG is narrowed row by row, never held at 16 bits. Each decoder is also held
//! to a limit of its own, so a file whose payload says more than its headers stops there: the
//! `png` crate keeps and inflates at most 16 MiB of chunks (an `iCCP` profile past that is
//! dropped; text chunks are never read), the `image` crate's `max_alloc` is the decode budget,
//! rav1d refuses a frame with more pixels than its item's `ispe`, and an AVIF item is never
//! larger than the file. `av1` (rav1d's C-style interface) and `libwebp` (libwebp's advanced
//! decoding API, for scaled decode) are the engine's only `unsafe` code.

mod av1;
mod bytes;
mod chunks;
pub mod content_type;
mod decode;
mod encode;
mod error;
mod heif;
mod icc;
#[cfg(feature = "turbo")]
mod libwebp;
mod probe;
#[cfg(feature = "samples")]
pub mod samples;
mod spec;
mod transform;

use fast_image_resize::Resizer;

pub use content_type::{ContentType, TypeMismatch, UnsupportedContentType};
pub use decode::{EIGHTH_SCALE_HEADROOM, HALF_SCALE_HEADROOM, HEADROOM};
pub use error::EngineError;
pub use probe::Probe;
pub use spec::{
    default_thumbnail_specs, default_variant_specs, parse_specs, Limits, OutputFormat, Spec,
    SpecError, DEFAULT_MEMORY_MB, DEFAULT_QUALITY,
};

/// One encoded output.
#[derive(Clone, PartialEq, Eq)]
pub struct Output {
    /// The spec's name.
    pub name: String,
    /// The encoding of `bytes`.
    pub format: OutputFormat,
    /// Width in pixels (upright).
    pub width: u32,
    /// Height in pixels (upright).
    pub height: u32,
    /// The encoded file.
    pub bytes: Vec<u8>,
}

impl Output {
    /// The object file name, `{name}.{extension}`.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.name, self.format.extension())
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("bytes", &format_args!("{} bytes", self.bytes.len()))
            .finish()
    }
}

/// Everything [`render`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// What the header said about the original.
    pub source: Probe,
    /// One output per spec, in the order of the specs.
    pub outputs: Vec<Output>,
    /// Thumbhash of the smallest output, base64 (standard alphabet); `None` without outputs.
    pub placeholder: Option<String>,
}

/// Reads format, displayed size and orientation from the header, without decoding pixels, and
/// checks `limits`.
pub fn probe(bytes: &[u8], limits: &Limits) -> Result<Probe, EngineError> {
    probe::read_header(bytes, limits).map(|h| h.probe())
}

/// The upright size of an output whose longest edge is `min(max_edge, source's)`.
pub fn output_size(source_width: u32, source_height: u32, max_edge: u32) -> (u32, u32) {
    let long = source_width.max(source_height).max(1);
    let edge = u64::from(max_edge.min(long));
    let scale = |side: u32| {
        ((u64::from(side) * edge + u64::from(long) / 2) / u64::from(long)).clamp(1, edge) as u32
    };
    (scale(source_width), scale(source_height))
}

fn check_spec(spec: &Spec) -> Result<(), EngineError> {
    if spec.max_edge == 0 {
        return Err(EngineError::InvalidSpec(format!(
            "output {:?} has a max edge of 0",
            spec.name
        )));
    }
    if !(1..=100).contains(&spec.quality) {
        return Err(EngineError::InvalidSpec(format!(
            "output {:?} has quality {} (1-100)",
            spec.name, spec.quality
        )));
    }
    if !spec.format.is_available() {
        return Err(EngineError::InvalidSpec(format!(
            "{} output is not built in",
            spec.format
        )));
    }
    Ok(())
}

/// Tuning of [`render_with`]. The defaults are what production uses; the benchmark varies them to
/// choose the defaults by measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenderOptions {
    /// Shrink-on-load keeps the decode's longest edge at least this multiple of the largest
    /// output's, and a smaller output resamples from a larger one only with this much headroom
    /// (1.0 = just big enough; [`HEADROOM`] by default).
    pub decode_headroom: f32,
    /// The headroom of a JPEG decoded at 1/2 scale ([`HALF_SCALE_HEADROOM`] by default).
    pub half_scale_headroom: f32,
    /// The headroom of a JPEG decoded at 1/8 scale ([`EIGHTH_SCALE_HEADROOM`] by default).
    pub eighth_scale_headroom: f32,
    /// Upsample a JPEG's chroma by repetition, merged with the colour conversion, when every
    /// output is smaller than the original (libjpeg-turbo's fast upsampling; the triangular
    /// filter otherwise). [`FAST_CHROMA_UPSAMPLING`] by default.
    pub fast_chroma_upsampling: bool,
}

/// Whether [`RenderOptions::fast_chroma_upsampling`] is on by default: chosen by measurement
/// (BENCHMARKS.md, the sweep of decode rules: on the 12 MP JPEG a full-size decode for 1600 px
/// is ~4% faster, and every output's DSSIM and size are the same to within 0.5%).
pub const FAST_CHROMA_UPSAMPLING: bool = true;

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            decode_headroom: HEADROOM,
            half_scale_headroom: HALF_SCALE_HEADROOM,
            eighth_scale_headroom: EIGHTH_SCALE_HEADROOM,
            fast_chroma_upsampling: FAST_CHROMA_UPSAMPLING,
        }
    }
}

/// Decodes `original` once and renders every spec from that decode (never upscaling), plus the
/// placeholder from the smallest output. Outputs come back in the order of `specs`.
pub fn render(original: &[u8], specs: &[Spec], limits: &Limits) -> Result<Rendered, EngineError> {
    render_with(original, specs, limits, &RenderOptions::default())
}

/// [`render`] with explicit [`RenderOptions`].
pub fn render_with(
    original: &[u8],
    specs: &[Spec],
    limits: &Limits,
    options: &RenderOptions,
) -> Result<Rendered, EngineError> {
    specs.iter().try_for_each(check_spec)?;
    let header = probe::read_header(original, limits)?;
    let source = header.probe();
    if specs.is_empty() {
        return Ok(Rendered {
            source,
            outputs: Vec::new(),
            placeholder: None,
        });
    }

    // Distinct upright sizes, largest first.
    let mut sizes: Vec<(u32, u32)> = specs
        .iter()
        .map(|s| output_size(source.width, source.height, s.max_edge))
        .collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes.dedup();
    let largest = sizes.first().map_or(1, |&(w, h)| w.max(h));

    let headroom = f64::from(options.decode_headroom.clamp(1.0, 8.0));
    let min_long = match header.content_type {
        // The decode's longest edge at the JPEG scale the rule picks.
        ContentType::Jpeg => {
            let long = header.width.max(header.height);
            let rule = decode::ScaleHeadroom {
                eighth: options.eighth_scale_headroom.clamp(1.0, 8.0),
                quarter: headroom as f32,
                half: options.half_scale_headroom.clamp(1.0, 8.0),
            };
            long.div_ceil(decode::jpeg_scale(long, largest, rule))
        }
        _ => (f64::from(largest) * headroom).ceil() as u32,
    };
    decode::check_budget(&header, largest, min_long, limits)?;
    // Only when every output is a downscale of the original: fast upsampling's blockier chroma
    // edges are then averaged away by the resampler.
    let fast_upsample = options.fast_chroma_upsampling && largest < header.width.max(header.height);
    let pixels = decode::decode(original, &header, min_long, fast_upsample, limits)?;
    // Colour: the embedded profile (or AVIF CICP) to sRGB, applied to each output below.
    let to_srgb = icc::for_original(original, header.content_type);

    let mut resizer = Resizer::new();
    // Largest first; each size resamples from the smallest image already made that still has
    // the headroom over it (e.g. 300 from the 600 px one), else from the decode: cheaper, same
    // filter.
    let mut stored: Vec<decode::Pixels> = Vec::with_capacity(sizes.len());
    for &(w, h) in &sizes {
        let (sw, sh) = if header.transposed() { (h, w) } else { (w, h) };
        let enough = |p: &&decode::Pixels| {
            f64::from(p.width.max(p.height)) >= f64::from(sw.max(sh)) * headroom
        };
        let from = stored.iter().rev().find(enough).unwrap_or(&pixels);
        let resized = transform::resize(&mut resizer, from, sw, sh)?;
        stored.push(resized);
    }
    decode::recycle(pixels.data);
    let upright: Vec<((u32, u32), decode::Pixels)> = sizes
        .iter()
        .zip(stored)
        .map(|(&size, px)| {
            let px = match &to_srgb {
                Some(t) => t.apply(px),
                None => px,
            };
            (size, transform::orient(px, header.orientation))
        })
        .collect();

    let mut outputs = Vec::with_capacity(specs.len());
    for spec in specs {
        let size = output_size(source.width, source.height, spec.max_edge);
        let Some((_, px)) = upright.iter().find(|(s, _)| *s == size) else {
            return Err(EngineError::InvalidSpec(format!(
                "output {:?} has no rendered size",
                spec.name
            )));
        };
        let bytes = encode::encode(px, spec.format, spec.quality)?;
        outputs.push(Output {
            name: spec.name.clone(),
            format: spec.format,
            width: px.width,
            height: px.height,
            bytes,
        });
    }

    let placeholder = match upright.last() {
        Some((_, smallest)) => Some(transform::placeholder(&mut resizer, smallest)?),
        None => None,
    };
    Ok(Rendered {
        source,
        outputs,
        placeholder,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_keep_the_aspect_ratio_and_never_upscale() {
        assert_eq!(output_size(4000, 3000, 600), (600, 450));
        assert_eq!(output_size(3000, 4000, 600), (450, 600));
        assert_eq!(output_size(300, 200, 600), (300, 200));
        assert_eq!(output_size(10_000, 10, 150), (150, 1));
        assert_eq!(output_size(1, 1, 150), (1, 1));
    }

    #[test]
    fn invalid_specs_are_refused_before_decoding() {
        let mut spec = Spec::new(0, OutputFormat::Jpeg);
        assert_eq!(
            render(b"", &[spec.clone()], &Limits::default())
                .unwrap_err()
                .code(),
            "invalid_spec"
        );
        spec.max_edge = 10;
        spec.quality = 0;
        assert_eq!(
            render(b"", &[spec], &Limits::default()).unwrap_err().code(),
            "invalid_spec"
        );
    }
}
