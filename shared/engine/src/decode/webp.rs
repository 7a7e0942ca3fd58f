//! WebP: libwebp (feature `turbo`) for still images, scaled while decoding; animations and the
//! pure-Rust build through image-webp at full size ([`super::via_image`]).

use super::via_image;
use super::Pixels;
use crate::probe::Header;
use crate::{EngineError, Limits};

/// WebP: libwebp (SIMD) with the C codecs, for still images, scaled while decoding to the
/// smallest size whose longest edge still reaches `min_long` (`libwebp`); animations (first frame
/// composited on the canvas) and the pure-Rust build go through image-webp at full size.
#[cfg(feature = "turbo")]
pub(super) fn decode(
    bytes: &[u8],
    header: &Header,
    min_long: u32,
    limits: &Limits,
) -> Result<Pixels, EngineError> {
    use crate::libwebp::{self, Refusal};
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
            via_image::decode(bytes, image::ImageFormat::WebP, header, limits)
        }
        // libwebp's status says little ("bitstream error"): let image-webp name what is wrong
        // (truncated, corrupt...), and never accept pixels libwebp refused.
        Err(Refusal::Failed(status)) => {
            match via_image::decode(bytes, image::ImageFormat::WebP, header, limits) {
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
pub(super) fn decode(
    bytes: &[u8],
    header: &Header,
    _min_long: u32,
    limits: &Limits,
) -> Result<Pixels, EngineError> {
    via_image::decode(bytes, image::ImageFormat::WebP, header, limits)
}
