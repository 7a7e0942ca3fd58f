//! The decision for one original, a pure function of its key, first bytes and row.

use crate::domain::{
    ContentType, ImageId, ImageRecord, NewImage, OwnerId, Stage, Status, Timestamp, UploadState,
};
use crate::ports::StoredRow;

/// The decision for one original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Create this row, then enqueue the stages.
    Create(ImageRecord, Vec<Stage>),
    /// Replace the legacy row by this one, then enqueue the stages.
    Repair(ImageRecord, Vec<Stage>),
    /// Touch this row (conditional on its version), then enqueue the stages.
    Requeue(ImageRecord, Vec<Stage>),
    /// Leave it.
    Leave(Left),
}

/// Why an original is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// Completed.
    Completed,
    /// A stage is being processed.
    InProgress,
    /// Failed.
    Failed,
    /// Its row changed after the run started.
    ChangedDuringRun,
    /// Not an image Safelight can process, or a key it does not make.
    NotAnImage,
    /// The key's owner is not the row's owner.
    ForeignOwner,
}

/// Decides what to do with the original `key` of `size` bytes, whose first bytes are `head`,
/// given its row, for a run that started at `started_at`. Pure.
pub fn decide(
    owner: &OwnerId,
    image_id: ImageId,
    size: u64,
    head: &[u8],
    row: Option<StoredRow>,
    started_at: Timestamp,
    now: Timestamp,
) -> Decision {
    let fresh = |content_type, filename, created_at| {
        ImageRecord::new(
            NewImage {
                image_id,
                owner_id: owner.clone(),
                filename,
                content_type,
                byte_size: size,
                sha256: None,
                upload_state: UploadState::Stored,
            },
            created_at,
        )
    };
    match row {
        None => match ContentType::sniff(head) {
            None => Decision::Leave(Left::NotAnImage),
            Some(ct) => {
                let mut r = fresh(ct, None, now);
                r.updated_at = now;
                Decision::Create(r, Stage::ALL.to_vec())
            }
        },
        Some(StoredRow::Legacy(old)) => {
            if old.owner_id.as_deref().is_some_and(|o| o != owner.as_str()) {
                return Decision::Leave(Left::ForeignOwner);
            }
            let Some(ct) = ContentType::sniff(head) else {
                return Decision::Leave(Left::NotAnImage);
            };
            let mut r = fresh(ct, old.filename, old.created_at.unwrap_or(now));
            r.updated_at = now;
            let mut stages = Vec::new();
            for (stage, done) in [
                (Stage::Thumbnail, old.thumbnails),
                (Stage::Variant, old.variants),
            ] {
                if done.is_empty() {
                    stages.push(stage);
                } else {
                    // The old row recorded this stage's outputs: keep them, do not redo them.
                    let _ = r.begin(stage, now);
                    let result = crate::domain::StageResult {
                        derivatives: done,
                        ..Default::default()
                    };
                    let _ = r.complete(stage, result, now);
                }
            }
            r.processing_attempts = 0;
            if stages.is_empty() {
                r.processing_completed_at = Some(now);
            }
            Decision::Repair(r, stages)
        }
        Some(StoredRow::Current(r)) => {
            let r = *r;
            if &r.owner_id != owner {
                return Decision::Leave(Left::ForeignOwner);
            }
            if r.updated_at >= started_at {
                return Decision::Leave(Left::ChangedDuringRun);
            }
            match r.processing_status {
                Status::Completed => return Decision::Leave(Left::Completed),
                Status::Failed => return Decision::Leave(Left::Failed),
                Status::Pending | Status::Processing => {}
            }
            if Stage::ALL
                .iter()
                .any(|s| r.stage_status(*s) == Status::Processing)
            {
                return Decision::Leave(Left::InProgress);
            }
            let stages: Vec<Stage> = Stage::ALL
                .into_iter()
                .filter(|s| r.stage_status(*s) == Status::Pending)
                .collect();
            let mut touched = r;
            touched.updated_at = now;
            if touched.upload_state == UploadState::AwaitingUpload {
                // The original is there: the upload happened.
                touched.upload_state = UploadState::Stored;
            }
            Decision::Requeue(touched, stages)
        }
    }
}
