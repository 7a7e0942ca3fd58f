//! Colour management: an original's embedded ICC profile is converted to sRGB, so outputs (which
//! carry no profile) show the same colours in every browser.
//!
//! Profiles come from the container: JPEG `APP2 ICC_PROFILE` segments (reassembled in sequence
//! order), PNG `iCCP`, WebP `ICCP`, AVIF `colr` (`prof`/`rICC`). The conversion is moxcms
//! (pure Rust, SIMD, BSD-3-Clause OR Apache-2.0), perceptual intent, 8 bits in and out. It runs
//! on each resampled output, not on the decoded original: the outputs hold far fewer pixels.
//!
//! A profile that cannot be used (unparseable, a colour space that does not match the pixels,
//! a device link...) is **never a failure**: the pixels are taken as sRGB, as before, and the
//! reason is logged at `warn`. CMYK profiles are not applied (CMYK JPEGs keep their naive
//! conversion).

use std::sync::Arc;

use moxcms::{
    CicpColorPrimaries, CicpProfile, ColorProfile, DataColorSpace, Layout, MatrixCoefficients,
    ProfileClass, RenderingIntent, TransferCharacteristics, Transform8BitExecutor,
    TransformOptions,
};

use crate::ContentType;

use super::decode::Pixels;

/// Largest profile accepted (a profile is usually 0.5-4 KB; LUT profiles reach ~1 MB).
pub(crate) const MAX_PROFILE_BYTES: usize = 4 << 20;

/// A ready conversion from one embedded profile to sRGB.
#[derive(Clone)]
pub(crate) struct ToSrgb {
    rgb: Arc<Transform8BitExecutor>,
    rgba: Arc<Transform8BitExecutor>,
    /// A gray profile: the first channel of the (gray-replicated) pixels is the input.
    gray: bool,
}

impl std::fmt::Debug for ToSrgb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToSrgb").field("gray", &self.gray).finish()
    }
}

/// Why an embedded profile is not applied (logged; the pixels pass through as sRGB).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProfileIgnored {
    /// moxcms could not read it.
    #[error("unreadable ICC profile: {0}")]
    Unreadable(String),
    /// A colour space the decoded RGB pixels cannot be in.
    #[error("ICC profile for {0} data does not describe RGB or gray pixels")]
    ColourSpace(String),
    /// Readable, but no transform to sRGB could be built from it.
    #[error("ICC profile cannot be converted to sRGB: {0}")]
    NoTransform(String),
    /// Bigger than [`MAX_PROFILE_BYTES`].
    #[error("ICC profile of {0} bytes is larger than allowed")]
    TooLarge(usize),
}

impl ToSrgb {
    /// Builds the conversion for `icc`, or says why it cannot be used.
    pub(crate) fn new(icc: &[u8]) -> Result<Self, ProfileIgnored> {
        if icc.len() > MAX_PROFILE_BYTES {
            return Err(ProfileIgnored::TooLarge(icc.len()));
        }
        let source = ColorProfile::new_from_slice(icc)
            .map_err(|e| ProfileIgnored::Unreadable(e.to_string()))?;
        Self::from_profile(&source)
    }

    /// Builds the conversion for CICP code points (AVIF `colr`/`nclx`): `None` when they already
    /// mean sRGB (BT.709 primaries or unspecified, an SDR transfer), or for HDR transfers (PQ,
    /// HLG), which would need tone mapping (logged; the pixels pass through).
    pub(crate) fn from_cicp(primaries: u16, transfer: u16) -> Option<Self> {
        let srgb_like_transfer = matches!(transfer, 1 | 2 | 6 | 13 | 14 | 15);
        if matches!(primaries, 1 | 2) && srgb_like_transfer {
            return None;
        }
        if matches!(transfer, 16 | 18) {
            tracing::warn!(
                primaries,
                transfer,
                "HDR (PQ/HLG) avif: not tone-mapped, taken as sRGB"
            );
            return None;
        }
        let cicp = (|| {
            Some(CicpProfile {
                color_primaries: CicpColorPrimaries::try_from(u8::try_from(primaries).ok()?)
                    .ok()?,
                transfer_characteristics: TransferCharacteristics::try_from(
                    u8::try_from(if transfer == 2 { 13 } else { transfer }).ok()?,
                )
                .ok()?,
                matrix_coefficients: MatrixCoefficients::Bt709,
                full_range: true,
            })
        })();
        let Some(cicp) = cicp else {
            tracing::warn!(primaries, transfer, "unknown CICP colour; taken as sRGB");
            return None;
        };
        match Self::from_profile(&ColorProfile::new_from_cicp(cicp)) {
            Ok(t) => Some(t),
            Err(reason) => {
                tracing::warn!(%reason, primaries, transfer, "CICP colour ignored; taken as sRGB");
                None
            }
        }
    }

    fn from_profile(source: &ColorProfile) -> Result<Self, ProfileIgnored> {
        if matches!(
            source.profile_class,
            ProfileClass::DeviceLink | ProfileClass::Abstract | ProfileClass::Named
        ) {
            return Err(ProfileIgnored::ColourSpace(format!(
                "{:?} profile",
                source.profile_class
            )));
        }
        let gray = match source.color_space {
            DataColorSpace::Rgb => false,
            DataColorSpace::Gray => true,
            other => return Err(ProfileIgnored::ColourSpace(format!("{other:?}"))),
        };
        let srgb = ColorProfile::new_srgb();
        let options = TransformOptions {
            rendering_intent: RenderingIntent::Perceptual,
            ..TransformOptions::default()
        };
        let (src3, src4) = if gray {
            (Layout::Gray, Layout::GrayAlpha)
        } else {
            (Layout::Rgb, Layout::Rgba)
        };
        let build = |src: Layout, dst: Layout| {
            source
                .create_transform_8bit(src, &srgb, dst, options)
                .map_err(|e| ProfileIgnored::NoTransform(e.to_string()))
        };
        Ok(ToSrgb {
            rgb: build(src3, Layout::Rgb)?,
            rgba: build(src4, Layout::Rgba)?,
            gray,
        })
    }

    /// Converts RGB or RGBA pixels (alpha untouched). On the rare transform error the pixels are
    /// left as they were (and the error logged): colour is never a reason to fail an image.
    pub(crate) fn apply(&self, px: Pixels) -> Pixels {
        let c = usize::from(px.channels);
        let (transform, input) = match (self.gray, c) {
            (false, 3) => (&self.rgb, None),
            (false, _) => (&self.rgba, None),
            // Gray profile: the decoders replicate gray into RGB; feed back one channel (+alpha).
            (true, 3) => (
                &self.rgb,
                Some(px.data.chunks_exact(3).map(|p| p[0]).collect::<Vec<u8>>()),
            ),
            (true, _) => (
                &self.rgba,
                Some(
                    px.data
                        .chunks_exact(4)
                        .flat_map(|p| [p[0], p[3]])
                        .collect::<Vec<u8>>(),
                ),
            ),
        };
        let mut out = vec![0u8; px.data.len()];
        let src = input.as_deref().unwrap_or(&px.data);
        match transform.transform(src, &mut out) {
            Ok(()) => Pixels { data: out, ..px },
            Err(e) => {
                tracing::warn!(error = %e, "ICC conversion failed; pixels kept as sRGB");
                px
            }
        }
    }
}

/// The conversion for an optional embedded profile: `None` without one, or when it cannot be
/// used (logged at `warn`, never an error).
pub(crate) fn conversion(icc: Option<&[u8]>) -> Option<ToSrgb> {
    let icc = icc?;
    match ToSrgb::new(icc) {
        Ok(t) => Some(t),
        Err(reason) => {
            tracing::warn!(%reason, bytes = icc.len(), "ICC profile ignored; pixels taken as sRGB");
            None
        }
    }
}

/// The embedded ICC profile of an original, if any (read from the container, not decoded).
pub(crate) fn embedded(bytes: &[u8], content_type: ContentType) -> Option<Vec<u8>> {
    match content_type {
        ContentType::Jpeg => jpeg_profile(bytes),
        ContentType::Png => png_profile(bytes),
        ContentType::Webp => webp_profile(bytes),
        ContentType::Avif => super::heif::Heif::parse(bytes, "avif")
            .ok()?
            .icc
            .filter(|p| p.len() <= MAX_PROFILE_BYTES)
            .map(<[u8]>::to_vec),
        ContentType::Gif => None,
    }
}

/// The conversion an original needs to become sRGB: its ICC profile, else (AVIF) its CICP
/// colour; `None` for sRGB, untagged or unusable colour (never an error).
pub(crate) fn for_original(bytes: &[u8], content_type: ContentType) -> Option<ToSrgb> {
    if let Some(icc) = embedded(bytes, content_type) {
        return conversion(Some(&icc));
    }
    if content_type == ContentType::Avif {
        let nclx = super::heif::Heif::parse(bytes, "avif").ok()?.nclx?;
        return ToSrgb::from_cicp(nclx.primaries, nclx.transfer);
    }
    None
}

/// The ICC profile of a PNG (`iCCP`, inflated): the png decoder reads the chunks before the
/// image data only, and inflates under the same allowance as the decode
/// ([`PNG_METADATA_LIMIT`](super::decode::PNG_METADATA_LIMIT)), so a profile that inflates to
/// gigabytes stops there (the decode has refused that file already).
fn png_profile(b: &[u8]) -> Option<Vec<u8>> {
    let reader = super::decode::png_decoder(b).read_info().ok()?;
    match reader.info().icc_profile.as_deref() {
        // Over MAX_PROFILE_BYTES: refused (and logged) by `conversion`.
        Some(profile) => Some(profile.to_vec()),
        None => {
            if png_has_chunk(b, b"iCCP") {
                // The png crate drops a profile it cannot inflate within its limits, silently.
                tracing::warn!(
                    limit_mib = super::decode::PNG_METADATA_LIMIT >> 20,
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
    let mut pos = 8usize;
    while let (Some(len), Some(k)) = (b.get(pos..pos + 4), b.get(pos + 4..pos + 8)) {
        if k == kind {
            return true;
        }
        if k == b"IDAT" {
            return false;
        }
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        match pos.checked_add(12 + len) {
            Some(next) => pos = next,
            None => return false,
        }
    }
    false
}

/// The ICC profile of a JPEG: its `APP2 "ICC_PROFILE\0"` segments (sequence number, count,
/// data) before the first scan, joined in sequence order. `None` when absent or inconsistent.
pub(crate) fn jpeg_profile(b: &[u8]) -> Option<Vec<u8>> {
    const TAG: &[u8] = b"ICC_PROFILE\0";
    let mut chunks: Vec<(u8, &[u8])> = Vec::new();
    let mut count = 0u8;
    let mut pos = 2usize;
    loop {
        while *b.get(pos)? != 0xFF {
            pos += 1;
        }
        while *b.get(pos)? == 0xFF {
            pos += 1;
        }
        let marker = *b.get(pos)?;
        pos += 1;
        match marker {
            0x00 | 0x01 | 0xD0..=0xD8 => continue,
            0xD9 | 0xDA => break,
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*b.get(pos)?, *b.get(pos + 1)?]));
        let seg = b.get(pos + 2..pos.checked_add(len)?)?;
        if marker == 0xE2 {
            if let Some([seq, n, data @ ..]) = seg.strip_prefix(TAG) {
                count = *n;
                chunks.push((*seq, data));
            }
        }
        pos += len.max(2);
    }
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
pub(crate) fn webp_profile(b: &[u8]) -> Option<Vec<u8>> {
    if b.get(12..16)? != b"VP8X" {
        return None;
    }
    let mut pos = 12usize;
    while let (Some(kind), Some(len)) = (b.get(pos..pos + 4), b.get(pos + 4..pos + 8)) {
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if kind == b"ICCP" {
            let data = b.get(pos + 8..pos.checked_add(8 + len)?)?;
            return (data.len() <= MAX_PROFILE_BYTES).then(|| data.to_vec());
        }
        if matches!(kind, b"VP8 " | b"VP8L" | b"ANIM") {
            // The profile precedes the image data (and the animation) when present.
            return None;
        }
        pos = pos.checked_add(8 + len + (len & 1))?;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

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
    fn an_srgb_profile_leaves_pixels_almost_unchanged() {
        let srgb = ColorProfile::new_srgb().encode().unwrap();
        let t = ToSrgb::new(&srgb).unwrap();
        let px = Pixels::new(2, 1, 3, vec![10, 128, 250, 200, 100, 50]);
        let out = t.apply(px.clone());
        for (a, b) in out.data.iter().zip(&px.data) {
            assert!(a.abs_diff(*b) <= 1, "{:?} vs {:?}", out.data, px.data);
        }
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

    #[test]
    fn garbage_profiles_are_ignored_with_a_reason() {
        assert!(matches!(
            ToSrgb::new(b"not a profile at all"),
            Err(ProfileIgnored::Unreadable(_))
        ));
        assert!(conversion(Some(b"junk")).is_none());
        assert!(conversion(None).is_none());
    }
}
