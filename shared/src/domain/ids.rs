//! Identifiers and the object keys the server makes from them. Constructors are the only way in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// A refused identifier or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not a ULID.
    #[error("{0:?} is not a valid image id")]
    ImageId(String),
    /// Empty, too long, or with characters that cannot sit in an object key.
    #[error("{0:?} is not a valid owner id")]
    OwnerId(String),
    /// Not an object key Safelight makes.
    #[error("{0:?} is not an original's object key (originals/{{owner}}/{{image_id}})")]
    ObjectKey(String),
}

/// An image's id: a ULID, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageId(Ulid);

impl ImageId {
    /// A fresh id for an image created now.
    pub fn new() -> Self {
        ImageId(Ulid::new())
    }
}

impl Default for ImageId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for ImageId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ulid::from_string(s)
            .map(ImageId)
            .map_err(|_| IdError::ImageId(s.to_owned()))
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for ImageId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ImageId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The owner of an image: the identity provider's `sub`. It becomes an object-key segment, so
/// it is limited to 1-128 characters of `A-Z a-z 0-9 - _ . @ | :`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct OwnerId(String);

impl OwnerId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for OwnerId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_.@|:".contains(c);
        if s.is_empty() || s.len() > 128 || !s.chars().all(ok_char) || s == "." || s == ".." {
            return Err(IdError::OwnerId(s.to_owned()));
        }
        Ok(OwnerId(s.to_owned()))
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OwnerId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An S3 object key. Only the server makes keys: from ids, never from a client's file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ObjectKey(String);

/// The prefix under which originals land; the processing pipeline listens to it.
pub const ORIGINALS_PREFIX: &str = "originals/";

impl ObjectKey {
    /// `originals/{owner}/{image_id}`
    pub fn original(owner: &OwnerId, id: ImageId) -> Self {
        ObjectKey(format!("{ORIGINALS_PREFIX}{owner}/{id}"))
    }

    /// `thumbnails/{image_id}/{name}.{ext}`
    pub fn thumbnail(id: ImageId, name: &str, ext: &str) -> Self {
        ObjectKey(format!("thumbnails/{id}/{name}.{ext}"))
    }

    /// `variants/{image_id}/{name}.{ext}`
    pub fn variant(id: ImageId, name: &str, ext: &str) -> Self {
        ObjectKey(format!("variants/{id}/{name}.{ext}"))
    }

    /// Reads the owner and image id back out of an original's key (already URL-decoded).
    pub fn parse_original(key: &str) -> Result<(OwnerId, ImageId), IdError> {
        let bad = || IdError::ObjectKey(key.to_owned());
        let rest = key.strip_prefix(ORIGINALS_PREFIX).ok_or_else(bad)?;
        let (owner, id) = rest.split_once('/').ok_or_else(bad)?;
        Ok((
            owner.parse().map_err(|_| bad())?,
            id.parse().map_err(|_| bad())?,
        ))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How caches may keep the object: a derivative's key depends only on (image, spec), so
    /// its bytes never change and it is cached for a year, immutable (its URLs are signed, so
    /// `public` lets the CDN keep one copy for every holder of a link). Originals: no policy.
    pub fn cache_control(&self) -> Option<&'static str> {
        self.derivative_of()
            .map(|_| "public, max-age=31536000, immutable")
    }

    /// The image directory (`{image_id}`) of a derivative's key (`thumbnails/{id}/…`,
    /// `variants/{id}/…`); `None` for an original.
    pub fn derivative_of(&self) -> Option<&str> {
        let rest = self
            .0
            .strip_prefix("thumbnails/")
            .or_else(|| self.0.strip_prefix("variants/"))?;
        rest.split_once('/').map(|(dir, _)| dir)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ids_round_trip_and_sort_by_creation() {
        let a = ImageId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = ImageId::new();
        assert!(a < b);
        assert_eq!(a.to_string().parse::<ImageId>(), Ok(a));
        assert!("not-a-ulid".parse::<ImageId>().is_err());
    }

    #[test]
    fn owner_ids_that_could_escape_a_key_segment_are_refused() {
        for bad in ["", "a/b", "..", "a b", "ü", &"x".repeat(129)] {
            assert!(bad.parse::<OwnerId>().is_err(), "{bad:?} accepted");
        }
        assert!("auth0|5f3c:9a@x.y-z_1".parse::<OwnerId>().is_ok());
    }

    #[test]
    fn only_derivatives_are_cached_as_immutable() {
        let id = ImageId::new();
        let owner: OwnerId = "u".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(ObjectKey::thumbnail(id, "256", "webp")
            .cache_control()
            .is_some_and(|c| c.contains("immutable") && c.contains("max-age=31536000")));
        assert!(ObjectKey::variant(id, "display", "jpg")
            .cache_control()
            .is_some());
        assert_eq!(ObjectKey::original(&owner, id).cache_control(), None);
        assert_eq!(
            ObjectKey::thumbnail(id, "256", "webp").derivative_of(),
            Some(id.to_string().as_str())
        );
        assert_eq!(ObjectKey::original(&owner, id).derivative_of(), None);
    }

    #[test]
    fn original_keys_are_made_from_ids_and_parse_back() {
        let owner: OwnerId = "user-1".parse().unwrap_or_else(|e| panic!("{e}"));
        let id = ImageId::new();
        let key = ObjectKey::original(&owner, id);
        assert_eq!(key.as_str(), format!("originals/user-1/{id}"));
        assert_eq!(ObjectKey::parse_original(key.as_str()), Ok((owner, id)));
        assert!(ObjectKey::parse_original("thumbnails/x/y").is_err());
        assert!(ObjectKey::parse_original("originals/user-1/../x").is_err());
        assert!(ObjectKey::parse_original(&format!("originals/a/b/{id}")).is_err());
    }
}
