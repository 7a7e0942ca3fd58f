//! PNG through the `png` crate, bounded: at most [`PNG_METADATA_LIMIT`] bytes of chunks kept and
//! inflated, 16-bit samples narrowed and gray widened so the only full-size buffer is the 8-bit
//! result.

use std::io::Cursor;

use super::buffer::pixel_buffer;
use super::{check_size, truncated_or_corrupt, Pixels};
use crate::probe::Header;
use crate::EngineError;

/// What the `png` crate may hold beside the pixels: the chunks it keeps (an `iCCP` profile
/// compressed and inflated, `eXIf`) and a row buffer. A profile is at most
/// [`MAX_PROFILE_BYTES`](crate::icc::MAX_PROFILE_BYTES) (used) and a row at most 16384 x 8
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
pub(super) fn decode(bytes: &[u8], header: &Header) -> Result<Pixels, EngineError> {
    const F: &str = "png";
    let mut decoder = png_decoder(bytes);
    // The profile is read (bounded the same way) by `icc` when the outputs are converted.
    decoder.set_ignore_iccp_chunk(true);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(png_error)?;
    let (width, height) = reader.info().size();
    check_size(F, (width, height), header)?;
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
    Ok(Pixels::new(width, height, channels as u8, data))
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
        other => truncated_or_corrupt(F, other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn gray_and_gray_alpha_widen_in_place() {
        let mut gray = vec![10, 20, 0, 0, 0, 0];
        widen_in_place(&mut gray, 2, 1);
        assert_eq!(gray, [10, 10, 10, 20, 20, 20]);
        let mut ga = vec![10, 1, 20, 2, 0, 0, 0, 0];
        widen_in_place(&mut ga, 2, 2);
        assert_eq!(ga, [10, 10, 10, 1, 20, 20, 20, 2]);
    }
}
