//! Exact duplicates: an owner's second upload of the same bytes (the request's `sha256`) gets the
//! image those bytes already made. The owner's digest index is claimed with a conditional write
//! before anything is created, so two uploads of the same bytes, however close, make one image.

use std::time::Duration;

use safelight::ports::{DigestClaim, DigestIndex, ImageRepository};
use safelight::{ImageId, ImageRecord, OwnerId, Status, Timestamp, UploadState};

/// Rounds of claim-and-check before giving up (each lost round means another upload of the
/// same bytes moved the claim meanwhile).
const ROUNDS: u32 = 3;

/// What the index knows about these bytes.
#[derive(Debug)]
pub enum Known {
    /// No image that will show these bytes: this upload makes a new one (the claim is its).
    New,
    /// An image of these bytes whose bytes arrived (processing, processed or queued).
    Duplicate(ImageRecord),
    /// An image of these bytes still awaiting them within its link's lifetime (an earlier
    /// attempt that dropped): sign for it again, for what is left of that lifetime.
    Resume(ImageRecord, Duration),
}

/// The request the bytes came with: what a resumed image must match.
#[derive(Debug, Clone, Copy)]
pub struct Declared<'a> {
    /// The owner's bytes' lowercase hex SHA-256.
    pub sha256: &'a str,
    /// The declared media type.
    pub content_type: &'a str,
    /// The declared size.
    pub size: u64,
    /// How long an upload link lives (a resumed image's link ends where its first one did).
    pub link_lifetime: Duration,
}

/// The index could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DedupeError {
    /// A table call failed.
    #[error(transparent)]
    Repo(#[from] safelight::ports::RepoError),
    /// Other uploads of the same bytes kept moving the claim.
    #[error("the digest claim kept changing")]
    Contended,
}

/// Claims the bytes for `fresh`, or finds the image that already holds them.
pub async fn resolve<D: DigestIndex, R: ImageRepository>(
    digests: &D,
    images: &R,
    owner: &OwnerId,
    declared: Declared<'_>,
    fresh: ImageId,
) -> Result<Known, DedupeError> {
    let claim = DigestClaim {
        owner,
        sha256: declared.sha256,
        image: fresh,
    };
    for _ in 0..ROUNDS {
        let Some(holder) = digests.claim(&claim).await? else {
            return Ok(Known::New);
        };
        if holder == fresh {
            return Ok(Known::New);
        }
        let existing = images.get(holder).await?;
        if let Some(row) = existing.filter(|r| &r.owner_id == owner) {
            if let Some(known) = reuse(row, declared, Timestamp::now()) {
                return Ok(known);
            }
        }
        // Expired, rejected, failed or gone: these bytes get a new image.
        if digests.reclaim(&claim, holder).await? {
            return Ok(Known::New);
        }
    }
    Err(DedupeError::Contended)
}

/// Whether an existing image of the same bytes is the answer, and how.
fn reuse(row: ImageRecord, declared: Declared<'_>, now: Timestamp) -> Option<Known> {
    match row.upload_state {
        UploadState::Stored if row.processing_status != Status::Failed => {
            Some(Known::Duplicate(row))
        }
        UploadState::AwaitingUpload
            if row.content_type.as_str() == declared.content_type
                && row.byte_size == declared.size =>
        {
            let lifetime_ms = i64::try_from(declared.link_lifetime.as_millis()).unwrap_or(0);
            let left_ms = row.created_at.unix_millis() + lifetime_ms - now.unix_millis();
            // Under a minute left is not worth a link: a new image gets a whole one.
            (left_ms >= 60_000)
                .then(|| Known::Resume(row, Duration::from_millis(left_ms.unsigned_abs())))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 100-byte JPEG of owner `u1` in `state`, created at `created`.
    fn row(state: UploadState, created: Timestamp) -> ImageRecord {
        testkit::image("u1")
            .size(100)
            .state(state)
            .created(created)
            .build()
    }

    fn declared() -> Declared<'static> {
        Declared {
            sha256: "ab",
            content_type: "image/jpeg",
            size: 100,
            link_lifetime: Duration::from_secs(900),
        }
    }

    #[test]
    fn an_arrived_image_is_the_duplicate_unless_it_failed() {
        let now = Timestamp::now();
        let stored = row(UploadState::Stored, now);
        assert!(matches!(
            reuse(stored.clone(), declared(), now),
            Some(Known::Duplicate(_))
        ));
        let mut failed = stored;
        failed.processing_status = Status::Failed;
        assert!(reuse(failed, declared(), now).is_none());
        for gone in [UploadState::Expired, UploadState::Rejected] {
            assert!(reuse(row(gone, now), declared(), now).is_none());
        }
    }

    #[test]
    fn an_image_awaiting_the_same_bytes_resumes_for_what_is_left_of_its_link() {
        let now = Timestamp::now();
        let awaiting = row(UploadState::AwaitingUpload, now.plus_secs(-600));
        match reuse(awaiting.clone(), declared(), now) {
            Some(Known::Resume(_, left)) => assert_eq!(left, Duration::from_secs(300)),
            other => panic!("{other:?}"),
        }
        let late = row(UploadState::AwaitingUpload, now.plus_secs(-870));
        assert!(reuse(late, declared(), now).is_none(), "30 s left");
        let other_size = Declared {
            size: 101,
            ..declared()
        };
        assert!(reuse(awaiting, other_size, now).is_none());
    }
}
