//! Colour management and the HEIF formats against committed fixtures (`shared/tests/fixtures`, made by
//! `make_colour_fixtures.py`): embedded ICC profiles converted to sRGB and compared with
//! LittleCMS's conversion of the same file, AVIF originals (orientation, alpha, colour), AVIF
//! output, and HEIC refused with its reason. Runs with either codec build.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use safelight_engine::ContentType;
use safelight_engine::{probe, render, Limits, Output, OutputFormat, Spec};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Renders `name` losslessly (PNG) at its own size: the pixels are the engine's decode plus
/// colour conversion, nothing else.
fn render_png(name: &str) -> (u32, u32, Vec<u8>) {
    let bytes = fixture(name);
    let size = probe(&bytes, &Limits::default()).unwrap();
    let edge = size.width.max(size.height);
    let r = render(
        &bytes,
        &[Spec::new(edge, OutputFormat::Png)],
        &Limits::default(),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    rgba(&r.outputs[0])
}

/// Decodes an output to RGBA8 independently of the engine: JPEG with jpeg-decoder (the `image`
/// crate's JPEG decoder misreads the pure-Rust encoder's files), the rest with `image`.
fn rgba(out: &Output) -> (u32, u32, Vec<u8>) {
    if out.format == OutputFormat::Jpeg {
        let mut d = jpeg_decoder::Decoder::new(out.bytes.as_slice());
        let data = d.decode().unwrap();
        let info = d.info().unwrap();
        assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
        let px = data
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect();
        return (u32::from(info.width), u32::from(info.height), px);
    }
    let img = image::load_from_memory(&out.bytes).unwrap().into_rgba8();
    (img.width(), img.height(), img.into_raw())
}

fn png_rgba(name: &str) -> (u32, u32, Vec<u8>) {
    let img = image::load_from_memory(&fixture(name))
        .unwrap()
        .into_rgba8();
    (img.width(), img.height(), img.into_raw())
}

/// Largest and mean absolute channel difference (RGB only).
fn difference(a: &(u32, u32, Vec<u8>), b: &(u32, u32, Vec<u8>)) -> (u8, f64) {
    assert_eq!((a.0, a.1), (b.0, b.1), "sizes differ");
    let mut max = 0u8;
    let mut sum = 0u64;
    let mut n = 0u64;
    for (pa, pb) in a.2.chunks_exact(4).zip(b.2.chunks_exact(4)) {
        for c in 0..3 {
            let d = pa[c].abs_diff(pb[c]);
            max = max.max(d);
            sum += u64::from(d);
            n += 1;
        }
    }
    (max, sum as f64 / n as f64)
}

/// The tolerance against LittleCMS: moxcms and LittleCMS round differently (fixed-point vs
/// float pipelines), and the two JPEG decoders (libjpeg-turbo in Pillow; ours, or the pure-Rust
/// jpeg-decoder) differ by an IDCT rounding step. Measured: at most 3 levels, mean under 1.
const MAX_LEVELS: u8 = 4;
const MAX_MEAN: f64 = 1.5;

fn assert_matches_reference(original: &str, expected: &str) {
    let got = render_png(original);
    let want = png_rgba(expected);
    let (max, mean) = difference(&got, &want);
    assert!(
        max <= MAX_LEVELS && mean <= MAX_MEAN,
        "{original}: max {max} levels, mean {mean:.2} from the LittleCMS reference"
    );
}

/// The conversion must matter: without it the pixels would be far from the reference.
fn assert_conversion_moves_colours(original: &str, expected: &str) {
    let bytes = fixture(original);
    let unconverted = image::load_from_memory(&bytes).unwrap().into_rgba8();
    let unconverted = (
        unconverted.width(),
        unconverted.height(),
        unconverted.into_raw(),
    );
    let (max, _) = difference(&unconverted, &png_rgba(expected));
    assert!(
        max >= 15,
        "{original}: the fixture's profile hardly changes colours ({max} levels)"
    );
}

#[test]
fn display_p3_jpegs_are_converted_to_srgb_like_littlecms_does() {
    assert_conversion_moves_colours("icc-display-p3.jpg", "icc-display-p3.expected.png");
    assert_matches_reference("icc-display-p3.jpg", "icc-display-p3.expected.png");
}

#[test]
fn adobe_rgb_jpegs_are_converted_even_when_the_profile_spans_several_segments() {
    assert_conversion_moves_colours("icc-adobe-rgb.jpg", "icc-adobe-rgb.expected.png");
    assert_matches_reference("icc-adobe-rgb.jpg", "icc-adobe-rgb.expected.png");
    assert_matches_reference(
        "icc-adobe-rgb-multi-segment.jpg",
        "icc-adobe-rgb-multi-segment.expected.png",
    );
}

#[test]
fn gray_jpegs_with_a_gray_profile_are_converted_to_srgb_gray() {
    assert_matches_reference("icc-gray.jpg", "icc-gray.expected.png");
    let (_, _, px) = render_png("icc-gray.jpg");
    assert!(px.chunks_exact(4).all(|p| p[0] == p[1] && p[1] == p[2]));
}

#[test]
fn png_and_webp_profiles_are_converted_too() {
    assert_conversion_moves_colours("icc-display-p3.png", "icc-display-p3-png.expected.png");
    assert_matches_reference("icc-display-p3.png", "icc-display-p3-png.expected.png");
    assert_matches_reference("icc-display-p3.webp", "icc-display-p3-webp.expected.png");
}

#[test]
fn a_broken_profile_is_ignored_and_the_image_still_renders_as_srgb() {
    let bytes = fixture("icc-broken.jpg");
    let r = render(
        &bytes,
        &[Spec::new(64, OutputFormat::Png)],
        &Limits::default(),
    )
    .expect("a broken profile must not fail the image");
    let got = rgba(&r.outputs[0]);
    let plain = image::load_from_memory(&bytes).unwrap().into_rgba8();
    let plain = (plain.width(), plain.height(), plain.into_raw());
    let (max, _) = difference(&got, &plain);
    assert!(
        max <= 3,
        "pixels should pass through unconverted, moved {max}"
    );
}

#[test]
fn converted_outputs_of_every_format_keep_the_converted_colour() {
    // The first patch of the card: P3 (200, 60, 40) is sRGB (219, 41, 23).
    let bytes = fixture("icc-display-p3.jpg");
    let specs: Vec<Spec> = [OutputFormat::Jpeg, OutputFormat::Webp, OutputFormat::Png]
        .into_iter()
        .map(|f| Spec::new(64, f))
        .collect();
    let r = render(&bytes, &specs, &Limits::default()).unwrap();
    for out in &r.outputs {
        let px = rgba(out);
        let i = ((4 * px.0 + 4) * 4) as usize;
        let got = &px.2[i..i + 3];
        // Lossy WebP without the C codecs is lossless; lossy outputs move a few levels.
        assert!(
            got[0].abs_diff(219) <= 8 && got[1].abs_diff(41) <= 8 && got[2].abs_diff(23) <= 8,
            "{}: {got:?}",
            out.file_name()
        );
    }
}

#[test]
fn avif_originals_decode_like_libavif_does() {
    let bytes = fixture("photo-320x240.avif");
    let p = probe(&bytes, &Limits::default()).unwrap();
    assert_eq!(
        (p.content_type, p.width, p.height),
        (ContentType::Avif, 320, 240)
    );
    let got = render_png("photo-320x240.avif");
    let want = png_rgba("photo-320x240-avif.expected.png");
    let (max, mean) = difference(&got, &want);
    // Both upsample 4:2:0 chroma bilinearly; measured max 2 levels, mean 0.05 (rounding).
    assert!(mean <= 0.5 && max <= 3, "max {max}, mean {mean:.2}");
}

#[test]
fn avif_profiles_are_converted() {
    assert_matches_reference("icc-display-p3.avif", "icc-display-p3-avif.expected.png");
}

#[test]
fn avif_alpha_is_kept_for_png_and_flattened_for_jpeg() {
    let bytes = fixture("alpha.avif");
    let r = render(
        &bytes,
        &[
            Spec::new(64, OutputFormat::Png),
            Spec::new(64, OutputFormat::Jpeg),
        ],
        &Limits::default(),
    )
    .unwrap();
    let png = rgba(&r.outputs[0]);
    let left = &png.2[(10 * 64 + 8) * 4..(10 * 64 + 8) * 4 + 4];
    let right = &png.2[(10 * 64 + 56) * 4..(10 * 64 + 56) * 4 + 4];
    assert!(left[0] > 240 && left[3] > 250, "{left:?}");
    assert!(right[3] < 5, "{right:?}");
    let jpeg = rgba(&r.outputs[1]);
    let right = &jpeg.2[(10 * 64 + 56) * 4..(10 * 64 + 56) * 4 + 3];
    assert!(
        right.iter().all(|&v| v > 240),
        "flattened on white: {right:?}"
    );
}

#[test]
fn avif_rotation_and_mirroring_come_out_upright() {
    for o in 1..=8 {
        let name = format!("orientation-{o}.avif");
        let bytes = fixture(&name);
        let p = probe(&bytes, &Limits::default()).unwrap();
        assert_eq!((p.width, p.height), (64, 48), "{name}: displayed size");
        let r = render(
            &bytes,
            &[Spec::new(64, OutputFormat::Png)],
            &Limits::default(),
        )
        .unwrap();
        let px = rgba(&r.outputs[0]);
        assert_eq!((px.0, px.1), (64, 48), "{name}");
        let at = |x: u32, y: u32| {
            let i = ((y * px.0 + x) * 4) as usize;
            [px.2[i], px.2[i + 1], px.2[i + 2]]
        };
        let near =
            |got: [u8; 3], want: [u8; 3]| got.iter().zip(want).all(|(g, w)| g.abs_diff(w) < 40);
        assert!(
            near(at(16, 12), [255, 0, 0]),
            "{name}: top-left {:?}",
            at(16, 12)
        );
        assert!(
            near(at(48, 12), [0, 255, 0]),
            "{name}: top-right {:?}",
            at(48, 12)
        );
        assert!(
            near(at(16, 36), [0, 0, 255]),
            "{name}: bottom-left {:?}",
            at(16, 36)
        );
        assert!(
            near(at(48, 36), [255, 255, 255]),
            "{name}: bottom-right {:?}",
            at(48, 36)
        );
    }
}

#[test]
fn an_iphone_like_heic_is_refused_as_unsupported_with_its_upright_size_and_the_reason() {
    let bytes = fixture("iphone-like.heic");
    for err in [
        probe(&bytes, &Limits::default()).unwrap_err(),
        render(
            &bytes,
            &[Spec::new(300, OutputFormat::Jpeg)],
            &Limits::default(),
        )
        .unwrap_err(),
    ] {
        assert_eq!(err.code(), "unsupported");
        let msg = err.to_string();
        // 1024x768 stored, irot 270 degrees anticlockwise: a 768x1024 portrait.
        assert!(msg.contains("768x1024 heic"), "{msg}");
        assert!(msg.contains("HEVC") && msg.contains("JPEG"), "{msg}");
    }
}

#[cfg(feature = "avif")]
#[test]
fn avif_outputs_are_avif_files_that_decode_to_the_right_size_and_colour() {
    let bytes = fixture("icc-display-p3.jpg");
    let specs = safelight_engine::parse_specs("32:jpeg+webp+avif").unwrap();
    let r = render(&bytes, &specs, &Limits::default()).unwrap();
    let avif = r
        .outputs
        .iter()
        .find(|o| o.format == OutputFormat::Avif)
        .unwrap();
    assert_eq!(avif.file_name(), "32.avif");
    assert_eq!((avif.width, avif.height), (32, 16));
    // Our own decoder reads it back (ftyp avif, av01 primary item).
    let back = render(
        &avif.bytes,
        &[Spec::new(32, OutputFormat::Png)],
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(back.source.content_type, ContentType::Avif);
    let px = rgba(&back.outputs[0]);
    let first = &px.2[(2 * 32 + 2) * 4..(2 * 32 + 2) * 4 + 3];
    assert!(
        first[0].abs_diff(219) <= 12 && first[1].abs_diff(41) <= 12 && first[2].abs_diff(23) <= 12,
        "{first:?}"
    );
}
