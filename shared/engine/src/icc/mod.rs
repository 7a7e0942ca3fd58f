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
//!
//! The `embedded` module finds the profile in the container; this one builds and applies the
//! conversion ([`ToSrgb`]).

mod embedded;

use std::sync::Arc;

use moxcms::{
    CicpColorPrimaries, CicpProfile, ColorProfile, DataColorSpace, Layout, MatrixCoefficients,
    ProfileClass, RenderingIntent, TransferCharacteristics, Transform8BitExecutor,
    TransformOptions,
};

use crate::decode::Pixels;
use crate::ContentType;
use embedded::embedded;

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

/// The conversion an original needs to become sRGB: its ICC profile, else (AVIF) its CICP
/// colour; `None` for sRGB, untagged or unusable colour (never an error).
pub(crate) fn for_original(bytes: &[u8], content_type: ContentType) -> Option<ToSrgb> {
    if let Some(icc) = embedded(bytes, content_type) {
        return conversion(Some(&icc));
    }
    if content_type == ContentType::Avif {
        let nclx = crate::heif::Heif::parse(bytes, "avif").ok()?.nclx?;
        return ToSrgb::from_cicp(nclx.primaries, nclx.transfer);
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

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
    fn garbage_profiles_are_ignored_with_a_reason() {
        assert!(matches!(
            ToSrgb::new(b"not a profile at all"),
            Err(ProfileIgnored::Unreadable(_))
        ));
        assert!(conversion(Some(b"junk")).is_none());
        assert!(conversion(None).is_none());
    }
}
