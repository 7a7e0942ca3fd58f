//! Processing jobs: one original to process, and Safelight's own retry message. The message
//! shapes they arrive in (S3, EventBridge) are read in `crate::events`.

use serde::{Deserialize, Serialize};

use super::ids::{ImageId, ObjectKey, OwnerId, ORIGINALS_PREFIX};
use super::status::Stage;

/// One original to process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The original's key.
    pub key: ObjectKey,
    /// Its owner, from the key.
    pub owner: OwnerId,
    /// Its image id, from the key.
    pub image_id: ImageId,
    /// The object's size, when the event says.
    pub size: Option<u64>,
    /// Where the job comes from: a storage event, or Safelight's own message.
    pub origin: Origin,
}

/// Where a job comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An "Object Created" event: something was written to the key.
    Stored {
        /// The version the write created, when the event says (AWS does on a versioned bucket;
        /// the local emulator's EventBridge detail leaves it out).
        version: Option<String>,
    },
    /// A retry or backfill message: process the image's (pinned) original again.
    Requested,
}

/// Safelight's own message, sent by retries and the backfill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryMessage {
    /// Marks the shape; always `"safelight.process"`.
    pub kind: String,
    /// The image to process.
    pub image_id: ImageId,
    /// Its original's key.
    pub key: ObjectKey,
    /// The stage this message is for.
    pub stage: Stage,
}

impl RetryMessage {
    /// The message for one stage of an image.
    pub fn new(image_id: ImageId, key: ObjectKey, stage: Stage) -> Self {
        RetryMessage {
            kind: "safelight.process".to_owned(),
            image_id,
            key,
            stage,
        }
    }
}

/// A message that is not a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Not JSON, or JSON of no known shape.
    #[error("message is not an S3, EventBridge or Safelight event: {0}")]
    Unrecognised(String),
    /// An object key outside `originals/{owner}/{image_id}`.
    #[error("object key {0:?} is not an original Safelight made")]
    ForeignKey(String),
}

impl Job {
    /// The job for an object `key`: `None` outside `originals/`, an error for a key under it that
    /// is not `originals/{owner}/{image_id}`. Message shapes are read in `crate::events`.
    pub fn for_original_key(
        key: &str,
        size: Option<u64>,
        origin: Origin,
    ) -> Result<Option<Job>, JobError> {
        if !key.starts_with(ORIGINALS_PREFIX) {
            return Ok(None);
        }
        let (owner, image_id) =
            ObjectKey::parse_original(key).map_err(|_| JobError::ForeignKey(key.to_owned()))?;
        Ok(Some(Job {
            key: ObjectKey::original(&owner, image_id),
            owner,
            image_id,
            size,
            origin,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_under_originals_are_jobs_and_malformed_ones_are_refused() {
        let id = "01KB4XV6Z0R8QW3M5T7N9P1C2D";
        let job = Job::for_original_key(&format!("originals/u-1/{id}"), Some(3), Origin::Requested)
            .unwrap()
            .unwrap();
        assert_eq!((job.owner.as_str(), job.size), ("u-1", Some(3)));
        assert_eq!(
            Job::for_original_key("thumbnails/x/150.jpg", None, Origin::Requested),
            Ok(None)
        );
        assert!(matches!(
            Job::for_original_key("originals/u/../../x", None, Origin::Requested),
            Err(JobError::ForeignKey(_))
        ));
    }
}
