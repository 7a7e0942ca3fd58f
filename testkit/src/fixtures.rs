//! Bytes and events the suites feed the system: real encoded pictures and the sample events of
//! `events/` (the ones `cargo lambda invoke` sends).

use std::path::PathBuf;

/// A real JPEG photo-like image (gradient with detail) of the given size.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x * 255 / width.max(1)) as u8,
            (y * 255 / height.max(1)) as u8,
            ((x ^ y) & 0xff) as u8,
        ])
    });
    encode(
        image::DynamicImage::ImageRgb8(img),
        image::ImageFormat::Jpeg,
    )
}

/// A real PNG of the given size.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([x as u8, y as u8, 128, 255])
    });
    encode(
        image::DynamicImage::ImageRgba8(img),
        image::ImageFormat::Png,
    )
}

fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format)
        .unwrap_or_else(|e| panic!("encoding a {format:?} in memory cannot fail: {e}"));
    out.into_inner()
}

/// The path of a sample event in the repository's `events/`.
pub fn event_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name)
}

/// The sample event `events/{name}` as JSON.
pub fn event(name: &str) -> serde_json::Value {
    let path = event_path(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The engine's committed corpus, `shared/tests/fixtures`.
pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/tests/fixtures")
}

/// The path of a file of the engine's committed corpus, `shared/tests/fixtures/{name}`.
pub fn corpus_path(name: &str) -> PathBuf {
    corpus_dir().join(name)
}

/// The bytes of `shared/tests/fixtures/{name}`.
pub fn corpus(name: &str) -> Vec<u8> {
    let path = corpus_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
