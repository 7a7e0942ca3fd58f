//! The image types Safelight accepts, and recognising them from their first bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An accepted image media type. Parsing is the only way in: anything else is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ContentType {
    /// `image/jpeg`
    #[serde(rename = "image/jpeg")]
    Jpeg,
    /// `image/png`
    #[serde(rename = "image/png")]
    Png,
    /// `image/webp`
    #[serde(rename = "image/webp")]
    Webp,
    /// `image/gif`
    #[serde(rename = "image/gif")]
    Gif,
    /// `image/avif`
    #[serde(rename = "image/avif")]
    Avif,
}

/// A media type outside the accepted set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported content type {0:?}: expected one of image/jpeg, image/png, image/webp, image/gif, image/avif")]
pub struct UnsupportedContentType(pub String);

impl ContentType {
    /// Every accepted type, in a stable order.
    pub const ALL: [ContentType; 5] = [
        ContentType::Jpeg,
        ContentType::Png,
        ContentType::Webp,
        ContentType::Gif,
        ContentType::Avif,
    ];

    /// The media type as sent over HTTP.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Jpeg => "image/jpeg",
            ContentType::Png => "image/png",
            ContentType::Webp => "image/webp",
            ContentType::Gif => "image/gif",
            ContentType::Avif => "image/avif",
        }
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ContentType::Jpeg => "jpg",
            ContentType::Png => "png",
            ContentType::Webp => "webp",
            ContentType::Gif => "gif",
            ContentType::Avif => "avif",
        }
    }

    /// Recognises an image from its magic bytes, whatever it claims to be.
    pub fn sniff(bytes: &[u8]) -> Option<ContentType> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            return Some(ContentType::Jpeg);
        }
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Some(ContentType::Png);
        }
        if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            return Some(ContentType::Gif);
        }
        if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            return Some(ContentType::Webp);
        }
        if is_avif(bytes) {
            return Some(ContentType::Avif);
        }
        None
    }
}

/// Bytes that are not the image type they were declared as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TypeMismatch {
    /// Another accepted type.
    #[error("the file is {actual}, not the declared {declared}")]
    Other {
        /// What the upload said.
        declared: ContentType,
        /// What the magic bytes say.
        actual: ContentType,
    },
    /// No accepted type at all.
    #[error("the file is not a recognisable image (declared {declared})")]
    Unrecognised {
        /// What the upload said.
        declared: ContentType,
    },
}

impl ContentType {
    /// The one magic-byte check of uploads and processing: `bytes` must be this type.
    pub fn check_bytes(self, bytes: &[u8]) -> Result<(), TypeMismatch> {
        match ContentType::sniff(bytes) {
            Some(actual) if actual == self => Ok(()),
            Some(actual) => Err(TypeMismatch::Other {
                declared: self,
                actual,
            }),
            None => Err(TypeMismatch::Unrecognised { declared: self }),
        }
    }
}

/// An ISO-BMFF `ftyp` box naming `avif`/`avis` as the major or a compatible brand.
fn is_avif(bytes: &[u8]) -> bool {
    if bytes.len() < 16 || &bytes[4..8] != b"ftyp" {
        return false;
    }
    let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let end = size.clamp(16, bytes.len().min(64));
    let brands = std::iter::once(&bytes[8..12]).chain(bytes[16..end].chunks_exact(4));
    brands.into_iter().any(|b| b == b"avif" || b == b"avis")
}

impl FromStr for ContentType {
    type Err = UnsupportedContentType;

    /// Accepts the media type case-insensitively, ignoring parameters (`; charset=…`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let essence = s
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "image/jpeg" | "image/jpg" => Ok(ContentType::Jpeg),
            "image/png" => Ok(ContentType::Png),
            "image/webp" => Ok(ContentType::Webp),
            "image/gif" => Ok(ContentType::Gif),
            "image/avif" => Ok(ContentType::Avif),
            _ => Err(UnsupportedContentType(s.to_owned())),
        }
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_parse_case_insensitively_with_parameters() {
        assert_eq!("IMAGE/JPEG".parse::<ContentType>(), Ok(ContentType::Jpeg));
        assert_eq!(
            "image/png; q=1".parse::<ContentType>(),
            Ok(ContentType::Png)
        );
        assert!("image/svg+xml".parse::<ContentType>().is_err());
        assert!("".parse::<ContentType>().is_err());
    }

    #[test]
    fn magic_bytes_identify_each_accepted_type() {
        assert_eq!(
            ContentType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(ContentType::Jpeg)
        );
        assert_eq!(
            ContentType::sniff(b"\x89PNG\r\n\x1a\n...."),
            Some(ContentType::Png)
        );
        assert_eq!(ContentType::sniff(b"GIF89a......"), Some(ContentType::Gif));
        assert_eq!(
            ContentType::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(ContentType::Webp)
        );
        let avif = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf";
        assert_eq!(ContentType::sniff(avif), Some(ContentType::Avif));
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
        assert_eq!(ContentType::sniff(heic), None);
        assert_eq!(ContentType::sniff(b"<svg"), None);
        assert_eq!(ContentType::sniff(b""), None);
    }
}
