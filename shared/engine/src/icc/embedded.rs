//! Where an original keeps its ICC profile: JPEG `APP2 ICC_PROFILE` segments (reassembled in
//! sequence order), PNG `iCCP` (inflated under the decode's allowance), WebP `ICCP`, AVIF `colr`.
//! Read from the container, never decoded; a profile over [`MAX_PROFILE_BYTES`] is not returned.

use super::MAX_PROFILE_BYTES;
use crate::chunks::{jpeg_segments, png_chunks, riff_chunks};
use crate::decode::{png_decoder, PNG_METADATA_LIMIT};
use crate::ContentType;

/// The embedded ICC profile of an original, if any (read from the container, not decoded).
pub(super) fn embedded(bytes: &[u8], content_type: ContentType) -> Option<Vec<u8>> {
    match content_type {
        ContentType::Jpeg => jpeg_profile(bytes),
        ContentType::Png => png_profile(bytes),
        ContentType::Webp => webp_profile(bytes),
        ContentType::Avif => crate::heif::Heif::parse(bytes, "avif")
            .ok()?
            .icc
            .filter(|p| p.len() <= MAX_PROFILE_BYTES)
            .map(<[u8]>::to_vec),
        ContentType::Gif => None,
    }
}

/// The ICC profile of a PNG (`iCCP`, inflated): the png decoder reads the chunks before the
/// image data only, and inflates under the same allowance as the decode
/// ([`PNG_METADATA_LIMIT`]), so a profile that inflates to
/// gigabytes stops there (the decode has refused that file already).
fn png_profile(b: &[u8]) -> Option<Vec<u8>> {
    let reader = png_decoder(b).read_info().ok()?;
    match reader.info().icc_profile.as_deref() {
        // Over MAX_PROFILE_BYTES: refused (and logged) by `conversion`.
        Some(profile) => Some(profile.to_vec()),
        None => {
            if png_has_chunk(b, b"iCCP") {
                // The png crate drops a profile it cannot inflate within its limits, silently.
                tracing::warn!(
                    limit_mib = PNG_METADATA_LIMIT >> 20,
                    "png iCCP profile unreadable or inflating past the limit; ignored, pixels \
                     taken as sRGB"
                );
            }
            None
        }
    }
}

/// Whether a PNG has a chunk of `kind` before its image data.
fn png_has_chunk(b: &[u8], kind: &[u8; 4]) -> bool {
    png_chunks(b)
        .map(|(k, _)| k)
        .take_while(|&k| k != b"IDAT")
        .any(|k| k == kind)
}

/// The ICC profile of a JPEG: its `APP2 "ICC_PROFILE\0"` segments (sequence number, count,
/// data) before the first scan, joined in sequence order. `None` when absent or inconsistent.
fn jpeg_profile(b: &[u8]) -> Option<Vec<u8>> {
    const TAG: &[u8] = b"ICC_PROFILE\0";
    let mut chunks: Vec<(u8, &[u8])> = Vec::new();
    let mut count = 0u8;
    jpeg_segments(b, |marker, seg| {
        if marker == 0xE2 {
            if let Some([seq, n, data @ ..]) = seg.strip_prefix(TAG) {
                count = *n;
                chunks.push((*seq, data));
            }
        }
        Ok(())
    })
    .ok()?;
    if chunks.is_empty() || usize::from(count) != chunks.len() {
        return None;
    }
    chunks.sort_by_key(|(seq, _)| *seq);
    // Sequence numbers run 1..=count.
    if chunks
        .iter()
        .enumerate()
        .any(|(i, (seq, _))| usize::from(*seq) != i + 1)
    {
        return None;
    }
    let total: usize = chunks.iter().map(|(_, d)| d.len()).sum();
    if total > MAX_PROFILE_BYTES {
        return None;
    }
    Some(
        chunks
            .into_iter()
            .flat_map(|(_, d)| d.iter().copied())
            .collect(),
    )
}

/// The ICC profile of a WebP: the payload of its `ICCP` chunk (extended format only).
fn webp_profile(b: &[u8]) -> Option<Vec<u8>> {
    if b.get(12..16)? != b"VP8X" {
        return None;
    }
    for (kind, data) in riff_chunks(b) {
        if kind == b"ICCP" {
            let data = data?;
            return (data.len() <= MAX_PROFILE_BYTES).then(|| data.to_vec());
        }
        if matches!(kind, b"VP8 " | b"VP8L" | b"ANIM") {
            // The profile precedes the image data (and the animation) when present.
            return None;
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use moxcms::ColorProfile;

    fn app2(seq: u8, count: u8, data: &[u8]) -> Vec<u8> {
        let mut seg = vec![0xFF, 0xE2];
        let len = (2 + 12 + 2 + data.len()) as u16;
        seg.extend_from_slice(&len.to_be_bytes());
        seg.extend_from_slice(b"ICC_PROFILE\0");
        seg.extend_from_slice(&[seq, count]);
        seg.extend_from_slice(data);
        seg
    }

    #[test]
    fn jpeg_profiles_split_over_several_segments_are_joined_in_sequence_order() {
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend(app2(2, 2, b"world"));
        jpeg.extend(app2(1, 2, b"hello "));
        jpeg.extend_from_slice(&[0xFF, 0xDA, 0, 2]);
        assert_eq!(jpeg_profile(&jpeg).unwrap(), b"hello world");
    }

    #[test]
    fn a_jpeg_profile_with_a_missing_segment_is_not_used() {
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend(app2(1, 2, b"hello "));
        jpeg.extend_from_slice(&[0xFF, 0xDA, 0, 2]);
        assert_eq!(jpeg_profile(&jpeg), None);
    }

    #[test]
    fn a_png_profile_is_read_from_its_iccp_chunk_and_a_png_without_one_has_none() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let p3 = std::fs::read(fixtures.join("icc-display-p3.png")).unwrap();
        assert!(png_has_chunk(&p3, b"iCCP"));
        let profile = png_profile(&p3).unwrap();
        assert!(ColorProfile::new_from_slice(&profile).is_ok());
        // (A profile inflating past the limit: `tests/bombs.rs`, bomb-png-iccp.png.)
        let plain = std::fs::read(fixtures.join("alpha.png")).unwrap();
        assert!(!png_has_chunk(&plain, b"iCCP"));
        assert_eq!(png_profile(&plain), None);
    }
}
