//! What to produce: limits on what is accepted, output formats, output specs, the default sets,
//! and the spec syntax used in configuration.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Limits checked from the header, before any pixel buffer is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most pixels (width x height) an original may declare.
    pub max_pixels: u64,
    /// Longest side an original may declare, in pixels.
    pub max_side: u32,
    /// Most bytes the decode of one image may hold at its peak (the decoded pixels plus the
    /// working copies of the first resampling), estimated from the header. See
    /// [`Limits::for_memory_mb`].
    pub max_decode_bytes: u64,
}

/// The function memory the default limits assume (the processors' `MemorySize`).
pub const DEFAULT_MEMORY_MB: u64 = 1024;

impl Limits {
    /// The limits for a process that may use `memory_mb` megabytes in all (a Lambda function's
    /// configured memory, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`): half of it for decoding one image,
    /// the other half for the runtime, the original's bytes, the outputs and allocator slack.
    /// 100 megapixels and 16384 px a side stay the format-independent caps.
    pub fn for_memory_mb(memory_mb: u64) -> Self {
        Limits {
            max_pixels: 100_000_000,
            max_side: 16_384,
            max_decode_bytes: memory_mb.saturating_mul(1024 * 1024) / 2,
        }
    }
}

impl Default for Limits {
    /// 100 megapixels, 16384 px per side, the decode budget of a 1024 MB function (512 MiB).
    fn default() -> Self {
        Limits::for_memory_mb(DEFAULT_MEMORY_MB)
    }
}

/// An output encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Baseline JPEG, 4:2:0, optimised Huffman tables; alpha flattened on white.
    Jpeg,
    /// Lossy WebP (with the `turbo` feature; lossless without it), alpha kept.
    Webp,
    /// PNG, 8 bits per channel, alpha kept.
    Png,
    /// AVIF: only with the `avif` feature; otherwise rendering it is an
    /// [`EngineError::InvalidSpec`](super::EngineError::InvalidSpec).
    Avif,
}

impl OutputFormat {
    /// The name used in specs and rows: `jpeg`, `webp`, `png`, `avif`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Webp => "webp",
            OutputFormat::Png => "png",
            OutputFormat::Avif => "avif",
        }
    }

    /// The file extension of objects in this format: `jpg`, `webp`, `png`, `avif`.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpg",
            OutputFormat::Webp => "webp",
            OutputFormat::Png => "png",
            OutputFormat::Avif => "avif",
        }
    }

    /// The media type to store the object with.
    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Webp => "image/webp",
            OutputFormat::Png => "image/png",
            OutputFormat::Avif => "image/avif",
        }
    }

    /// Whether this build can encode the format.
    pub fn is_available(self) -> bool {
        self != OutputFormat::Avif || cfg!(feature = "avif")
    }

    /// Whether the format keeps an alpha channel.
    pub fn keeps_alpha(self) -> bool {
        !matches!(self, OutputFormat::Jpeg)
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutputFormat {
    type Err = SpecError;

    /// Accepts `jpeg`/`jpg`, `webp`, `png`, `avif`, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "jpeg" | "jpg" => Ok(OutputFormat::Jpeg),
            "webp" => Ok(OutputFormat::Webp),
            "png" => Ok(OutputFormat::Png),
            "avif" => Ok(OutputFormat::Avif),
            _ => Err(SpecError::new(
                s,
                "unknown format: expected jpeg, webp, png or avif",
            )),
        }
    }
}

/// One output to render: its longest edge is `min(max_edge, the source's longest edge)` (never
/// upscaled), aspect ratio kept. The object is stored as `{name}.{format.extension()}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Spec {
    /// Name of the output (e.g. `"150"`); several formats may share a name.
    pub name: String,
    /// Longest edge in pixels, at least 1.
    pub max_edge: u32,
    /// Encoding.
    pub format: OutputFormat,
    /// Encoder quality 1-100 (JPEG and lossy WebP; ignored by PNG and lossless WebP).
    pub quality: u8,
}

/// The quality used when a spec does not name one.
pub const DEFAULT_QUALITY: u8 = 80;

impl Spec {
    /// A spec named after its edge (`"300"`) at the default quality.
    pub fn new(max_edge: u32, format: OutputFormat) -> Self {
        Spec {
            name: max_edge.to_string(),
            max_edge,
            format,
            quality: DEFAULT_QUALITY,
        }
    }

    /// The object file name, `{name}.{extension}`.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.name, self.format.extension())
    }
}

/// Thumbnails: 150, 300 and 600 px on the longest edge, JPEG q80, named `"150"`, `"300"`, `"600"`.
pub fn default_thumbnail_specs() -> Vec<Spec> {
    [150, 300, 600]
        .into_iter()
        .map(|edge| Spec::new(edge, OutputFormat::Jpeg))
        .collect()
}

/// Variants: 1280 and 2048 px on the longest edge, each as JPEG and WebP q80, named `"1280"`
/// and `"2048"` (one object per format).
pub fn default_variant_specs() -> Vec<Spec> {
    [1280, 2048]
        .into_iter()
        .flat_map(|edge| {
            [
                Spec::new(edge, OutputFormat::Jpeg),
                Spec::new(edge, OutputFormat::Webp),
            ]
        })
        .collect()
}

/// A spec string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid output spec {item:?}: {reason}")]
pub struct SpecError {
    /// The offending item.
    pub item: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl SpecError {
    fn new(item: &str, reason: &'static str) -> Self {
        SpecError {
            item: item.trim().to_owned(),
            reason,
        }
    }
}

/// Parses a comma-separated list of outputs, as used in configuration.
///
/// ```text
/// list   = item ("," item)*
/// item   = [name "="] edge [":" format ("+" format)*] ["@" quality]
/// name   = 1-64 of [A-Za-z0-9_-]     (default: the edge, e.g. "300")
/// edge   = 1-65535                    (longest edge in px)
/// format = jpeg | jpg | webp | png | avif   (default: jpeg)
/// quality = 1-100                     (default: 80)
/// ```
/// Examples: `"150:jpeg,300:jpeg,600:jpeg"`, `"1280:jpeg+webp,2048:jpeg+webp@75"`,
/// `"small=320:webp@70"`. Whitespace around items is ignored; a `(name, format)` pair may appear
/// only once.
pub fn parse_specs(s: &str) -> Result<Vec<Spec>, SpecError> {
    let mut specs: Vec<Spec> = Vec::new();
    for item in s.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(SpecError::new(s, "empty item: expected e.g. \"300:jpeg\""));
        }
        let (name, rest) = match item.split_once('=') {
            Some((name, rest)) => {
                let name = name.trim();
                let valid = !name.is_empty()
                    && name.len() <= 64
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !valid {
                    return Err(SpecError::new(
                        item,
                        "a name is 1-64 letters, digits, '_' or '-'",
                    ));
                }
                (Some(name.to_owned()), rest)
            }
            None => (None, item),
        };
        let (rest, quality) = match rest.split_once('@') {
            Some((rest, q)) => match q.trim().parse::<u8>() {
                Ok(q) if (1..=100).contains(&q) => (rest, q),
                _ => return Err(SpecError::new(item, "quality must be 1-100")),
            },
            None => (rest, DEFAULT_QUALITY),
        };
        let (edge, formats) = match rest.split_once(':') {
            Some((edge, formats)) => (edge, Some(formats)),
            None => (rest, None),
        };
        let max_edge = match edge.trim().parse::<u32>() {
            Ok(e) if (1..=65_535).contains(&e) => e,
            _ => {
                return Err(SpecError::new(
                    item,
                    "the edge must be a number of pixels, 1-65535",
                ))
            }
        };
        let formats = match formats {
            Some(list) => list
                .split('+')
                .map(|f| {
                    f.parse::<OutputFormat>().map_err(|_| {
                        SpecError::new(item, "unknown format: expected jpeg, webp, png or avif")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![OutputFormat::Jpeg],
        };
        let name = name.unwrap_or_else(|| max_edge.to_string());
        for format in formats {
            if specs.iter().any(|s| s.name == name && s.format == format) {
                return Err(SpecError::new(
                    item,
                    "the same name and format appear twice",
                ));
            }
            specs.push(Spec {
                name: name.clone(),
                max_edge,
                format,
                quality,
            });
        }
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_sets_match_the_documented_names_sizes_and_formats() {
        let thumbs = default_thumbnail_specs();
        let got: Vec<_> = thumbs
            .iter()
            .map(|s| (s.name.as_str(), s.max_edge, s.format, s.quality))
            .collect();
        assert_eq!(
            got,
            [
                ("150", 150, OutputFormat::Jpeg, 80),
                ("300", 300, OutputFormat::Jpeg, 80),
                ("600", 600, OutputFormat::Jpeg, 80)
            ]
        );
        let variants = default_variant_specs();
        let files: Vec<_> = variants.iter().map(Spec::file_name).collect();
        assert_eq!(files, ["1280.jpg", "1280.webp", "2048.jpg", "2048.webp"]);
        assert!(variants.iter().all(|s| s.quality == 80));
    }

    #[test]
    fn spec_strings_parse_into_the_defaults() {
        assert_eq!(
            parse_specs("150:jpeg, 300:jpeg,600:jpg").unwrap(),
            default_thumbnail_specs()
        );
        assert_eq!(
            parse_specs("1280:jpeg+webp,2048:jpeg+webp").unwrap(),
            default_variant_specs()
        );
        assert_eq!(
            parse_specs("300").unwrap(),
            vec![Spec::new(300, OutputFormat::Jpeg)]
        );
    }

    #[test]
    fn spec_strings_take_names_and_qualities() {
        let specs = parse_specs("small=320:webp+png@70").unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(
            specs[0],
            Spec {
                name: "small".into(),
                max_edge: 320,
                format: OutputFormat::Webp,
                quality: 70
            }
        );
        assert_eq!(specs[1].format, OutputFormat::Png);
    }

    #[test]
    fn bad_spec_strings_are_refused_with_a_reason() {
        for bad in [
            "", "0:jpeg", "abc", "300:gif", "300@0", "300@101", "a b=300", "300,300", "300,,600",
            "70000",
        ] {
            let err = parse_specs(bad).expect_err(bad);
            assert!(!err.reason.is_empty(), "{bad}");
        }
    }

    #[test]
    fn formats_name_their_extension_and_media_type() {
        assert_eq!(OutputFormat::Jpeg.extension(), "jpg");
        assert_eq!(OutputFormat::Webp.content_type(), "image/webp");
        assert_eq!(OutputFormat::Avif.extension(), "avif");
        assert_eq!("JPG".parse::<OutputFormat>().unwrap(), OutputFormat::Jpeg);
        assert_eq!(
            serde_json::to_string(&OutputFormat::Webp).unwrap(),
            "\"webp\""
        );
    }
}
