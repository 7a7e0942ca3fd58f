//! Image rows for tests: [`image`] starts a builder with the defaults most tests want (a new id, a
//! stored 1000-byte JPEG without file name or digest, created now), each test names only what it
//! is about.

use crate::domain::{ContentType, ImageId, ImageRecord, NewImage, OwnerId, Timestamp, UploadState};

/// A builder of an owner's image row.
#[derive(Debug, Clone)]
#[must_use]
pub struct ImageBuilder {
    new: NewImage,
    created_at: Timestamp,
}

/// An image of `owner` (an owner id; panics when it is not a valid one): a new id, a stored
/// 1000-byte JPEG without file name or digest, created now.
pub fn image(owner: &str) -> ImageBuilder {
    let owner: OwnerId = owner
        .parse()
        .unwrap_or_else(|e| panic!("{owner:?} is not an owner id: {e}"));
    image_of(&owner)
}

/// [`image`] for an owner id at hand.
pub fn image_of(owner: &OwnerId) -> ImageBuilder {
    ImageBuilder {
        new: NewImage {
            image_id: ImageId::new(),
            owner_id: owner.clone(),
            filename: None,
            content_type: ContentType::Jpeg,
            byte_size: 1000,
            sha256: None,
            upload_state: UploadState::Stored,
        },
        created_at: Timestamp::now(),
    }
}

impl ImageBuilder {
    /// This id instead of a new one.
    pub fn id(mut self, id: ImageId) -> Self {
        self.new.image_id = id;
        self
    }

    /// A display file name.
    pub fn filename(mut self, name: &str) -> Self {
        self.new.filename = Some(name.to_owned());
        self
    }

    /// The declared type.
    pub fn content_type(mut self, content_type: ContentType) -> Self {
        self.new.content_type = content_type;
        self
    }

    /// The declared size.
    pub fn size(mut self, bytes: u64) -> Self {
        self.new.byte_size = bytes;
        self
    }

    /// The hex SHA-256 of the bytes.
    pub fn sha256(mut self, hex: &str) -> Self {
        self.new.sha256 = Some(hex.to_owned());
        self
    }

    /// Whether the original is stored yet.
    pub fn state(mut self, state: UploadState) -> Self {
        self.new.upload_state = state;
        self
    }

    /// Created at `at`.
    pub fn created(mut self, at: Timestamp) -> Self {
        self.created_at = at;
        self
    }

    /// Created `secs` seconds ago.
    pub fn age_secs(self, secs: i64) -> Self {
        self.created(Timestamp::now().plus_secs(-secs))
    }

    /// What the row is made from.
    pub fn new_image(self) -> NewImage {
        self.new
    }

    /// The fresh row (both stages pending, version 0).
    pub fn build(self) -> ImageRecord {
        ImageRecord::new(self.new, self.created_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_has_the_defaults_and_what_the_test_names() {
        let r = image("alice").filename("cat.png").size(7).build();
        assert_eq!(r.owner_id.as_str(), "alice");
        assert_eq!(r.filename.as_deref(), Some("cat.png"));
        assert_eq!((r.byte_size, r.content_type), (7, ContentType::Jpeg));
        assert_eq!(r.upload_state, UploadState::Stored);
        assert_eq!(r.version, 0);
        assert_ne!(image("alice").build().image_id, r.image_id);
    }
}
