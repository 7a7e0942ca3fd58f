//! Decoding an original once into 8-bit RGB or RGBA pixels in stored orientation, as small as the
//! largest requested output allows (JPEG shrink-on-load in the DCT domain).
//!
//! JPEG goes through libjpeg-turbo (feature `turbo`) or jpeg-decoder (pure Rust); PNG through the
//! `png` crate, narrowing 16-bit samples to 8 bits row by row and widening gray in place, so the
//! only full-size buffer is the 8-bit result; GIF through the `image` crate; WebP through libwebp
//! (feature `turbo`) or image-webp; AVIF through rav1d (`av1`), in both builds. CMYK/YCCK becomes
//! RGB (Adobe-inverted CMYK, as Photoshop writes it), and animations give their first frame.
//! Colour conversion happens later, on the outputs (`icc`).
//!
//! [`working_set`] estimates from the header alone what a decode (and the first resampling from
//! it) holds at its peak, so an image that would not fit the function's memory is refused before
//! any pixel buffer exists.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::ContentType;

use super::av1;
use super::heif::{Coding, Heif};
use super::probe::{format_name, Header};
use super::{EngineError, Limits};

/// The largest decode buffer a thread keeps between renders: a 16 MP RGB decode. Bigger ones are
/// freed as usual, so what stays resident between images is bounded whatever the last one was.
const KEEP_MAX: usize = 48 << 20;

thread_local! {
    /// The last decode's pixel buffer, kept for the next decode on this thread. A decode of tens of
    /// megabytes is above glibc's largest `mmap` threshold (32 MiB), so a fresh one comes from the
    /// kernel page by page: measured at ~13% of a full-size 12 MP JPEG render (bench/PROFILE.md).
    /// A processor renders its batch one image at a time on one blocking thread, so this is one
    /// buffer per processor process.
    static KEPT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A zero-filled buffer of `len` bytes: the thread's kept buffer when it is large enough (zeroed
/// again, so nothing of an earlier image can reach this one), else a fresh one.
fn pixel_buffer(len: usize) -> Vec<u8> {
    let mut buf = KEPT.with_borrow_mut(std::mem::take);
    if buf.capacity() < len {
        // Freed first, so the two are never held together.
        drop(buf);
        return vec![0; len];
    }
    buf.clear();
    buf.resize(len, 0);
    buf
}

/// Hands a decode's buffer back once the render no longer needs it (see [`KEPT`]).
pub(crate) fn recycle(buf: Vec<u8>) {
    if buf.capacity() <= KEEP_MAX {
        KEPT.with_borrow_mut(|kept| {
            if buf.capacity() > kept.capacity() {
                *kept = buf;
            }
        });
    }
}

/// Decoded 8-bit pixels, rows tightly packed, `channels` 3 (RGB) or 4 (RGBA, straight alpha).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Pixels {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Pixels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pixels({}x{}x{})",
            self.width, self.height, self.channels
        )
    }
}

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

/// Decodes `bytes` (already probed as `header`), at a size whose longest edge is at least
/// `min_long` where the format can scale while decoding.
/// `fast_upsample`: a JPEG's chroma is upsampled by repetition (libjpeg-turbo's merged
/// upsampling and colour conversion) instead of its triangular filter; for decodes that are then
/// downscaled (see `RenderOptions::fast_chroma_upsampling`).
pub(crate) fn decode(
    bytes: &[u8],
    header: &Header,
    min_long: u32,
    fast_upsample: bool,
    limits: &Limits,
) -> Result<Pixels, EngineError> {
    let format = format_name(header.content_type);
    // Defence in depth: a panic inside a third-party decoder becomes a typed error, not a crash.
    let result = catch_unwind(AssertUnwindSafe(|| match header.content_type {
        ContentType::Jpeg => {
            // Entropy-coded data never holds FF D9 (an FF there is followed by 00 or a restart
            // marker), so a file without it after the scan starts was cut short. Decoders would
            // otherwise fill the missing rows with gray.
            let scan = bytes.get(header.jpeg_scan_start..).unwrap_or_default();
            if !scan.windows(2).rev().any(|w| w == [0xFF, 0xD9]) {
                return Err(EngineError::Truncated { format: "jpeg" });
            }
            decode_jpeg(bytes, header, min_long, fast_upsample)
        }
        ContentType::Png => decode_png(bytes, header),
        ContentType::Gif => decode_with_image(bytes, image::ImageFormat::Gif, header, limits),
        ContentType::Webp => decode_webp(bytes, header, min_long, limits),
        ContentType::Avif => decode_avif(bytes, header),
    }));
    let pixels = result.unwrap_or_else(|_| {
        Err(EngineError::corrupt(
            format,
            "the decoder failed on malformed data",
        ))
    })?;
    if pixels.width == 0 || pixels.height == 0 {
        return Err(EngineError::corrupt(format, "the decoded image is empty"));
    }
    Ok(pixels)
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
pub(crate) fn working_set(header: &Header, largest: u32, min_long: u32) -> u64 {
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
fn jpeg_denominator(long: u32, min_long: u32) -> u64 {
    let want = u64::from(min_long.min(long));
    [8u64, 4, 2]
        .into_iter()
        .find(|&d| u64::from(long).div_ceil(d) >= want)
        .unwrap_or(1)
}

/// What the `png` crate may hold beside the pixels: the chunks it keeps (an `iCCP` profile
/// compressed and inflated, `eXIf`) and a row buffer. A profile is at most
/// [`MAX_PROFILE_BYTES`](super::icc::MAX_PROFILE_BYTES) (used) and a row at most 16384 x 8
/// bytes; anything past this allowance is refused as too large (`EngineError::MetadataLimit`), so
/// a chunk that inflates to gigabytes stops here. Text chunks are not read at all.
pub(crate) const PNG_METADATA_LIMIT: usize = 16 << 20;

/// A `png` decoder of `bytes` that inflates and keeps at most [`PNG_METADATA_LIMIT`] bytes of
/// chunks, ignoring text chunks (`tEXt`, `zTXt`, `iTXt`: never used, never inflated).
pub(crate) fn png_decoder(bytes: &[u8]) -> png::Decoder<Cursor<&[u8]>> {
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits {
            bytes: PNG_METADATA_LIMIT,
        },
    );
    decoder.set_ignore_text_chunk(true);
    decoder
}

/// PNG through the `png` crate: 16-bit samples narrowed to 8 bits and palettes expanded as each
/// row is unfiltered, straight into a buffer of the final RGB(A) size; gray and gray+alpha are
/// then widened in place. The first frame of an APNG is its default image. The decoder's own
/// allocations are bounded by [`PNG_METADATA_LIMIT`].
fn decode_png(bytes: &[u8], header: &Header) -> Result<Pixels, EngineError> {
    const F: &str = "png";
    let mut decoder = png_decoder(bytes);
    // The profile is read (bounded the same way) by `icc` when the outputs are converted.
    decoder.set_ignore_iccp_chunk(true);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(png_error)?;
    let (width, height) = reader.info().size();
    if (width, height) != (header.width, header.height) {
        return Err(EngineError::corrupt(
            F,
            "the decoded size differs from the header's",
        ));
    }
    let (color, depth) = reader.output_color_type();
    if depth != png::BitDepth::Eight {
        return Err(EngineError::Unsupported(format!(
            "png: {depth:?} bit samples after expansion"
        )));
    }
    let samples = color.samples();
    let channels: usize = if matches!(color, png::ColorType::GrayscaleAlpha | png::ColorType::Rgba)
    {
        4
    } else {
        3
    };
    let pixels = (width as usize)
        .checked_mul(height as usize)
        .ok_or(EngineError::MemoryLimit)?;
    let raw = reader
        .output_buffer_size()
        .ok_or(EngineError::MemoryLimit)?;
    let mut data = pixel_buffer(
        pixels
            .checked_mul(channels)
            .ok_or(EngineError::MemoryLimit)?,
    );
    if raw > data.len() || raw != pixels * samples {
        return Err(EngineError::corrupt(F, "unexpected decoded row layout"));
    }
    reader.next_frame(&mut data).map_err(png_error)?;
    widen_in_place(&mut data, pixels, samples);
    Ok(Pixels {
        width,
        height,
        channels: channels as u8,
        data,
    })
}

/// Gray (1 sample) to RGB, gray+alpha (2) to RGBA, in a buffer already of the wider size whose
/// start holds the packed narrow pixels. Walks backwards, so no source is overwritten before it
/// is read.
fn widen_in_place(data: &mut [u8], pixels: usize, samples: usize) {
    match samples {
        1 => {
            for i in (0..pixels).rev() {
                let v = data[i];
                data[3 * i..3 * i + 3].fill(v);
            }
        }
        2 => {
            for i in (0..pixels).rev() {
                let (v, a) = (data[2 * i], data[2 * i + 1]);
                data[4 * i..4 * i + 4].copy_from_slice(&[v, v, v, a]);
            }
        }
        _ => {}
    }
}

fn png_error(e: png::DecodingError) -> EngineError {
    use png::DecodingError;
    const F: &str = "png";
    match e {
        DecodingError::LimitsExceeded => EngineError::MetadataLimit {
            format: F,
            limit_mib: (PNG_METADATA_LIMIT >> 20) as u64,
        },
        DecodingError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            EngineError::Truncated { format: F }
        }
        other => {
            let msg = other.to_string();
            let lower = msg.to_lowercase();
            if lower.contains("eof")
                || lower.contains("end of file")
                || lower.contains("unexpected end")
                || lower.contains("no more data")
            {
                EngineError::Truncated { format: F }
            } else {
                EngineError::corrupt(F, msg)
            }
        }
    }
}

fn decode_with_image(
    bytes: &[u8],
    format: image::ImageFormat,
    header: &Header,
    limits: &Limits,
) -> Result<Pixels, EngineError> {
    let name = format_name(header.content_type);
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_side);
    image_limits.max_image_height = Some(limits.max_side);
    // The budget itself: the canvas and any frame buffer the decoder allocates count against it
    // (the header estimate already counted them; this stops what the header did not announce).
    image_limits.max_alloc = Some(limits.max_decode_bytes);
    reader.limits(image_limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => EngineError::AllocLimit {
            budget_mib: limits.max_decode_bytes >> 20,
        },
        other => image_error(name, other),
    })?;
    if (img.width(), img.height()) != (header.width, header.height) {
        return Err(EngineError::corrupt(
            name,
            "the decoded size differs from the header's",
        ));
    }
    let (width, height) = (img.width(), img.height());
    if img.color().has_alpha() {
        Ok(Pixels {
            width,
            height,
            channels: 4,
            data: img.into_rgba8().into_raw(),
        })
    } else {
        Ok(Pixels {
            width,
            height,
            channels: 3,
            data: img.into_rgb8().into_raw(),
        })
    }
}

fn image_error(format: &'static str, e: image::ImageError) -> EngineError {
    use image::ImageError;
    match e {
        ImageError::Limits(_) => EngineError::MemoryLimit,
        ImageError::Unsupported(u) => {
            EngineError::Unsupported(format!("{format}: {u}").to_lowercase())
        }
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            EngineError::Truncated { format }
        }
        other => {
            let msg = other.to_string();
            let lower = msg.to_lowercase();
            if lower.contains("eof")
                || lower.contains("end of file")
                || lower.contains("unexpected end")
                || lower.contains("no more data")
            {
                EngineError::Truncated { format }
            } else {
                EngineError::corrupt(format, msg)
            }
        }
    }
}

/// WebP: libwebp (SIMD) with the C codecs, for still images, scaled while decoding to the
/// smallest size whose longest edge still reaches `min_long` (`libwebp`); animations (first frame
/// composited on the canvas) and the pure-Rust build go through image-webp at full size.
#[cfg(feature = "turbo")]
fn decode_webp(
    bytes: &[u8],
    header: &Header,
    min_long: u32,
    limits: &Limits,
) -> Result<Pixels, EngineError> {
    use super::libwebp::{self, Refusal};
    let (w, h) = (header.width, header.height);
    let long = w.max(h);
    let want = min_long.clamp(1, long);
    // Same aspect ratio, each side rounded up so the longest edge reaches `want`.
    let scaled = (want < long).then(|| {
        let side = |s: u32| {
            ((u64::from(s) * u64::from(want)).div_ceil(u64::from(long))).clamp(1, u64::from(s))
                as u32
        };
        (side(w), side(h))
    });
    match libwebp::decode(bytes, w, h, scaled) {
        Ok(px) => Ok(px),
        Err(Refusal::Engine(e)) => Err(e),
        Err(Refusal::Animated) => {
            decode_with_image(bytes, image::ImageFormat::WebP, header, limits)
        }
        // libwebp's status says little ("bitstream error"): let image-webp name what is wrong
        // (truncated, corrupt...), and never accept pixels libwebp refused.
        Err(Refusal::Failed(status)) => {
            match decode_with_image(bytes, image::ImageFormat::WebP, header, limits) {
                Err(e) => Err(e),
                Ok(_) => Err(EngineError::corrupt(
                    "webp",
                    format!("libwebp could not decode the image ({status:?})"),
                )),
            }
        }
    }
}

#[cfg(not(feature = "turbo"))]
fn decode_webp(
    bytes: &[u8],
    header: &Header,
    _min_long: u32,
    limits: &Limits,
) -> Result<Pixels, EngineError> {
    decode_with_image(bytes, image::ImageFormat::WebP, header, limits)
}

/// AVIF: the primary item (or each tile of a grid) through rav1d, YUV to RGB with the container's
/// CICP matrix and range when given (else the sequence header's), plus the alpha item if any.
/// Each item is decoded with rav1d's frame size limit at the pixels of its own `ispe` (the
/// image's when an item has none), so a bitstream coding a larger frame than its container
/// declares is refused before rav1d allocates it.
fn decode_avif(bytes: &[u8], header: &Header) -> Result<Pixels, EngineError> {
    const F: &str = "avif";
    let heif = Heif::parse(bytes, F)?;
    if heif.coding != Coding::Av1 {
        return Err(EngineError::Unsupported(
            "avif: the primary image is not av1-coded".into(),
        ));
    }
    let matrix = heif.nclx.map(|n| n.matrix);
    let range = heif.nclx.map(|n| n.full_range);
    let (width, height) = (header.width, header.height);
    let px = width as usize * height as usize;
    let rgb = match &heif.grid {
        None => {
            let frame = av1::decode(&heif.item_data(heif.primary, F)?, (width, height))?;
            if (frame.width, frame.height) != (width, height) {
                return Err(EngineError::corrupt(
                    F,
                    "the decoded size differs from the header's",
                ));
            }
            av1::to_rgb(&frame, matrix, range)
        }
        Some(grid) => {
            if (grid.width, grid.height) != (width, height) {
                return Err(EngineError::corrupt(
                    F,
                    "the grid size differs from the header's",
                ));
            }
            let mut canvas = vec![0u8; px * 3];
            let mut tile_size = None;
            for (i, &tile) in grid.tiles.iter().enumerate() {
                if heif.item_kind(tile) != Some(*b"av01") {
                    return Err(EngineError::corrupt(F, "a grid tile is not av1-coded"));
                }
                let declared = heif.item_size(tile).unwrap_or((width, height));
                let frame = av1::decode(&heif.item_data(tile, F)?, declared)?;
                let size = (frame.width, frame.height);
                if *tile_size.get_or_insert(size) != size {
                    return Err(EngineError::corrupt(F, "grid tiles differ in size"));
                }
                let tile_rgb = av1::to_rgb(&frame, matrix, range);
                let (col, row) = (i as u32 % grid.columns, i as u32 / grid.columns);
                let (x0, y0) = (col * frame.width, row * frame.height);
                if x0 >= width || y0 >= height {
                    continue;
                }
                let copy_w = (frame.width.min(width - x0) * 3) as usize;
                for y in 0..frame.height.min(height - y0) {
                    let src = (y * frame.width * 3) as usize;
                    let dst = (((y0 + y) * width + x0) * 3) as usize;
                    canvas[dst..dst + copy_w].copy_from_slice(&tile_rgb[src..src + copy_w]);
                }
            }
            match tile_size {
                Some((tw, th))
                    if u64::from(tw) * u64::from(grid.columns) >= u64::from(width)
                        && u64::from(th) * u64::from(grid.rows) >= u64::from(height) => {}
                _ => {
                    return Err(EngineError::corrupt(
                        F,
                        "the grid tiles do not cover the image",
                    ))
                }
            }
            canvas
        }
    };
    let Some(alpha_item) = heif.alpha else {
        return Ok(Pixels {
            width,
            height,
            channels: 3,
            data: rgb,
        });
    };
    if heif.grid.is_some() {
        // Alpha of a grid is itself a grid: rare in photos; keep the colour, drop the alpha.
        tracing::warn!("avif grid with alpha: alpha ignored");
        return Ok(Pixels {
            width,
            height,
            channels: 3,
            data: rgb,
        });
    }
    let alpha_size = heif.item_size(alpha_item).unwrap_or((width, height));
    let alpha = av1::decode(&heif.item_data(alpha_item, F)?, alpha_size)?;
    if (alpha.width, alpha.height) != (width, height) {
        return Err(EngineError::corrupt(
            F,
            "the alpha plane's size differs from the image's",
        ));
    }
    let alpha = av1::to_alpha(&alpha);
    let data = rgb
        .chunks_exact(3)
        .zip(alpha)
        .flat_map(|(p, a)| [p[0], p[1], p[2], a])
        .collect();
    Ok(Pixels {
        width,
        height,
        channels: 4,
        data,
    })
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

#[cfg(feature = "turbo")]
fn decode_jpeg(
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
    Ok(Pixels {
        width,
        height,
        channels: 3,
        data,
    })
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

#[cfg(not(feature = "turbo"))]
fn decode_jpeg(
    bytes: &[u8],
    header: &Header,
    min_long: u32,
    _fast_upsample: bool,
) -> Result<Pixels, EngineError> {
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
    Ok(Pixels {
        width,
        height,
        channels: 3,
        data,
    })
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
    fn a_kept_buffer_is_reused_zeroed_and_a_huge_one_is_not_kept() {
        let mut first = pixel_buffer(1 << 20);
        first.fill(0xAB);
        let ptr = first.as_ptr();
        recycle(first);
        let again = pixel_buffer(1 << 19);
        assert_eq!(
            again.as_ptr(),
            ptr,
            "the kept buffer serves a smaller decode"
        );
        assert!(
            again.iter().all(|&b| b == 0),
            "nothing of the last image is left"
        );
        recycle(again);
        recycle(Vec::with_capacity(KEEP_MAX + 1));
        let kept = pixel_buffer(1);
        assert_eq!(kept.as_ptr(), ptr, "a buffer over KEEP_MAX is not kept");
    }

    #[test]
    fn gray_and_gray_alpha_widen_in_place() {
        let mut gray = vec![10, 20, 0, 0, 0, 0];
        widen_in_place(&mut gray, 2, 1);
        assert_eq!(gray, [10, 10, 10, 20, 20, 20]);
        let mut ga = vec![10, 1, 20, 2, 0, 0, 0, 0];
        widen_in_place(&mut ga, 2, 2);
        assert_eq!(ga, [10, 10, 10, 1, 20, 20, 20, 2]);
    }

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

    #[test]
    fn inverted_cmyk_converts_to_rgb() {
        // No ink -> white; full black ink -> black; full cyan ink -> (0, 255, 255).
        assert_eq!(inverted_cmyk_to_rgb(&[255, 255, 255, 255]), [255, 255, 255]);
        assert_eq!(inverted_cmyk_to_rgb(&[255, 255, 255, 0]), [0, 0, 0]);
        assert_eq!(inverted_cmyk_to_rgb(&[0, 255, 255, 255]), [0, 255, 255]);
    }
}
