//! The image status row and the transitions the pipeline applies to it. Pure: the repository
//! adapter persists a record with a conditional write on `version`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::{ImageId, ObjectKey, OwnerId};
use super::status::{ErrorKind, Stage, Status, TransitionError, UploadState};
use super::time::Timestamp;
use super::ContentType;

/// One stored derivative (a thumbnail size or a variant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Derivative {
    /// Where it is stored.
    pub key: ObjectKey,
    /// Pixel width.
    pub width: u32,
    /// Pixel height.
    pub height: u32,
    /// Size of the encoded file.
    pub bytes: u64,
    /// `jpeg`, `webp`, `png` or `avif`.
    pub format: String,
}

/// An image's row in the images table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image's id (partition key).
    pub image_id: ImageId,
    /// Who uploaded it (the `by_owner` index's key).
    pub owner_id: OwnerId,
    /// Where the original is stored.
    pub original_key: ObjectKey,
    /// The version of the original that was (or is being) processed, pinned by the first
    /// attempt: every later read of the original (retries, the original's GET URL) names it, so
    /// a later write to the key cannot change what the product shows. `None` on a bucket without
    /// versioning, and until processing starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_version: Option<String>,
    /// The client's file name, for display only (never used in a key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// The declared (and, once stored, verified) media type.
    pub content_type: ContentType,
    /// Size of the original in bytes (declared until stored).
    pub byte_size: u64,
    /// Lower-case hex SHA-256 of the original, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Displayed width of the original, once probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Displayed height of the original, once probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Where the original is in its upload.
    pub upload_state: UploadState,
    /// Overall status, derived from the two sub-statuses.
    pub processing_status: Status,
    /// Status of the thumbnail set.
    pub thumbnail_status: Status,
    /// Status of the display variants.
    pub variant_status: Status,
    /// Human-readable reason of the last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_error: Option<String>,
    /// Machine class of `processing_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// How many processing attempts have started, over both stages.
    pub processing_attempts: u32,
    /// When the first attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_started_at: Option<Timestamp>,
    /// When processing reached `completed` or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_completed_at: Option<Timestamp>,
    /// When the row was created (the `by_owner` index's sort key).
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// When `processing_status` took its current value (the `by_status_v2` index's sort key: it
    /// changes only with the status, so a write that keeps the status does not rewrite the
    /// row's index entry). Absent on rows written before it; read [`ImageRecord::status_since`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_since: Option<Timestamp>,
    /// Optimistic-locking counter: every write expects the version it read.
    pub version: u64,
    /// Thumbnails by name.
    #[serde(default)]
    pub thumbnails: BTreeMap<String, Derivative>,
    /// Variants by name.
    #[serde(default)]
    pub variants: BTreeMap<String, Derivative>,
    /// A tiny blurred preview (thumbhash, base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    /// How many times the sweeper re-enqueued this image because it made no progress for a long
    /// time (its processing message was lost); the sweeper gives up on it after a few. An
    /// owner's or admin's retry starts the count again. Absent (0) on rows written before it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sweep_requeues: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a new row is made from.
#[derive(Debug, Clone)]
pub struct NewImage {
    /// The server-made id.
    pub image_id: ImageId,
    /// The uploader.
    pub owner_id: OwnerId,
    /// Display file name.
    pub filename: Option<String>,
    /// Declared type.
    pub content_type: ContentType,
    /// Declared or actual size.
    pub byte_size: u64,
    /// Hex SHA-256, when known.
    pub sha256: Option<String>,
    /// Whether the original is already stored.
    pub upload_state: UploadState,
}

/// Stage results recorded on completion.
#[derive(Debug, Clone, Default)]
pub struct StageResult {
    /// Derivatives by name.
    pub derivatives: BTreeMap<String, Derivative>,
    /// Displayed dimensions of the original.
    pub source_size: Option<(u32, u32)>,
    /// Thumbhash placeholder, if this stage made one.
    pub placeholder: Option<String>,
}

/// Refusals of the retry request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("only failed processing can be retried (status is {0})")]
pub struct NotFailed(pub Status);

impl ImageRecord {
    /// A fresh row: both stages pending.
    pub fn new(new: NewImage, now: Timestamp) -> Self {
        ImageRecord {
            original_key: ObjectKey::original(&new.owner_id, new.image_id),
            original_version: None,
            image_id: new.image_id,
            owner_id: new.owner_id,
            filename: new.filename,
            content_type: new.content_type,
            byte_size: new.byte_size,
            sha256: new.sha256,
            width: None,
            height: None,
            upload_state: new.upload_state,
            processing_status: Status::Pending,
            thumbnail_status: Status::Pending,
            variant_status: Status::Pending,
            processing_error: None,
            error_kind: None,
            processing_attempts: 0,
            processing_started_at: None,
            processing_completed_at: None,
            created_at: now,
            updated_at: now,
            status_since: Some(now),
            version: 0,
            thumbnails: BTreeMap::new(),
            variants: BTreeMap::new(),
            placeholder: None,
            sweep_requeues: 0,
        }
    }

    /// When the row took its current status: `status_since`, or for a row written before that
    /// field its last change (the backfill writes it so; see `BackfillRows::index_row`).
    pub fn status_since(&self) -> Timestamp {
        self.status_since.unwrap_or(self.updated_at)
    }

    /// The sub-status of a stage.
    pub fn stage_status(&self, stage: Stage) -> Status {
        match stage {
            Stage::Thumbnail => self.thumbnail_status,
            Stage::Variant => self.variant_status,
        }
    }

    fn set_stage(
        &mut self,
        stage: Stage,
        to: Status,
        now: Timestamp,
    ) -> Result<(), TransitionError> {
        let from = self.stage_status(stage);
        if !from.can_become(to) {
            return Err(TransitionError { stage, from, to });
        }
        match stage {
            Stage::Thumbnail => self.thumbnail_status = to,
            Stage::Variant => self.variant_status = to,
        }
        let overall = Status::overall(self.thumbnail_status, self.variant_status);
        if overall != self.processing_status {
            self.status_since = Some(now);
        }
        self.processing_status = overall;
        self.processing_completed_at = self.processing_status.is_terminal().then_some(now);
        self.touch(now);
        Ok(())
    }

    /// Stamps a change at `now`. A row written before `status_since` gets it pinned first (its
    /// status is at least as old as its last change), so the index's sort key stays put.
    fn touch(&mut self, now: Timestamp) {
        self.status_since.get_or_insert(self.updated_at);
        self.updated_at = now;
    }

    /// A worker starts (or restarts) a stage: counts the attempt and stamps the start time.
    pub fn begin(&mut self, stage: Stage, now: Timestamp) -> Result<(), TransitionError> {
        self.set_stage(stage, Status::Processing, now)?;
        self.processing_attempts = self.processing_attempts.saturating_add(1);
        self.processing_started_at.get_or_insert(now);
        Ok(())
    }

    /// A stage finished: its derivatives are recorded.
    pub fn complete(
        &mut self,
        stage: Stage,
        result: StageResult,
        now: Timestamp,
    ) -> Result<(), TransitionError> {
        self.set_stage(stage, Status::Completed, now)?;
        match stage {
            Stage::Thumbnail => self.thumbnails = result.derivatives,
            Stage::Variant => self.variants = result.derivatives,
        }
        if let Some((w, h)) = result.source_size {
            self.width = Some(w);
            self.height = Some(h);
        }
        if result.placeholder.is_some() {
            self.placeholder = result.placeholder;
        }
        // A transient error that was overcome is history, not state.
        if self.error_kind == Some(ErrorKind::Transient) && self.processing_status != Status::Failed
        {
            self.processing_error = None;
            self.error_kind = None;
        }
        Ok(())
    }

    /// A stage failed for good.
    pub fn fail(
        &mut self,
        stage: Stage,
        kind: ErrorKind,
        message: &str,
        now: Timestamp,
    ) -> Result<(), TransitionError> {
        self.set_stage(stage, Status::Failed, now)?;
        self.processing_error = Some(message.to_owned());
        self.error_kind = Some(kind);
        if kind == ErrorKind::Rejected {
            self.upload_state = UploadState::Rejected;
        }
        Ok(())
    }

    /// A transient failure: the stage stays `processing` (a retry is coming); the reason is kept.
    pub fn note_transient(
        &mut self,
        stage: Stage,
        message: &str,
        now: Timestamp,
    ) -> Result<(), TransitionError> {
        let from = self.stage_status(stage);
        if from != Status::Processing {
            return Err(TransitionError {
                stage,
                from,
                to: Status::Processing,
            });
        }
        // Once the image has failed (the other stage, for good), its reason is that failure's:
        // a passing note of this stage must not replace it.
        if self.processing_status != Status::Failed {
            self.processing_error = Some(message.to_owned());
            self.error_kind = Some(ErrorKind::Transient);
        }
        self.touch(now);
        Ok(())
    }

    /// The presigned upload was never used and its link has expired: both stages fail with
    /// `rejected` and the upload state becomes `expired` (there is nothing to process).
    pub fn expire_upload(&mut self, now: Timestamp) -> Result<(), TransitionError> {
        for stage in Stage::ALL {
            self.set_stage(stage, Status::Failed, now)?;
        }
        self.processing_error =
            Some("the upload did not arrive before its upload link expired".to_owned());
        self.error_kind = Some(ErrorKind::Rejected);
        self.upload_state = UploadState::Expired;
        Ok(())
    }

    /// The sweeper found the original of a row still `awaiting_upload` in the bucket (the
    /// processor's event for it has not been handled yet): the upload is `stored`, so the row is
    /// never expired as an upload that did not arrive. Whether anything changed.
    pub fn upload_arrived(&mut self, now: Timestamp) -> bool {
        if self.upload_state != UploadState::AwaitingUpload {
            return false;
        }
        self.upload_state = UploadState::Stored;
        self.touch(now);
        true
    }

    /// The sweeper re-enqueued this image's unfinished stages after it made no progress for a
    /// long time: counted, and the row is touched so the next sweep waits as long again.
    pub fn note_sweep_requeue(&mut self, now: Timestamp) {
        self.sweep_requeues = self.sweep_requeues.saturating_add(1);
        self.touch(now);
    }

    /// An owner's or admin's retry: failed stages go back to `pending`, the error is cleared.
    /// An upload refused or taken for expired counts as stored again (if its original really
    /// never came, processing fails it again as gone; if it came late, it is processed now), and
    /// the sweeper's re-enqueue count starts again. Returns the stages that will run again.
    pub fn retry(&mut self, now: Timestamp) -> Result<Vec<Stage>, NotFailed> {
        if self.processing_status != Status::Failed {
            return Err(NotFailed(self.processing_status));
        }
        let failed: Vec<Stage> = Stage::ALL
            .into_iter()
            .filter(|s| self.stage_status(*s) == Status::Failed)
            .collect();
        for stage in &failed {
            // Failed -> pending is always allowed.
            let _ = self.set_stage(*stage, Status::Pending, now);
        }
        self.processing_error = None;
        self.error_kind = None;
        if matches!(
            self.upload_state,
            UploadState::Rejected | UploadState::Expired
        ) {
            self.upload_state = UploadState::Stored;
        }
        self.sweep_requeues = 0;
        Ok(failed)
    }

    /// Whether `job` is the storage event of a write to the original other than the version
    /// this image pinned (a re-sent POST form): that version is not the image, and a processor
    /// that gets the event deletes it, so the pinned one stays current.
    pub fn is_later_write(&self, job: &super::job::Job) -> bool {
        matches!(
            (&job.origin, &self.original_version),
            (super::job::Origin::Stored { version: Some(v) }, Some(pinned)) if v != pinned
        )
    }

    /// Whether a principal may see this image.
    pub fn is_visible_to(&self, owner: &OwnerId) -> bool {
        &self.owner_id == owner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ImageRecord {
        ImageRecord::new(
            NewImage {
                image_id: ImageId::new(),
                owner_id: "u1".parse().unwrap(),
                filename: Some("a.jpg".into()),
                content_type: ContentType::Jpeg,
                byte_size: 10,
                sha256: None,
                upload_state: UploadState::Stored,
            },
            Timestamp::from_unix_millis(1_000),
        )
    }

    #[test]
    fn both_stages_completing_completes_the_image_and_stamps_times() {
        let mut r = record();
        let t = |ms| Timestamp::from_unix_millis(ms);
        r.begin(Stage::Thumbnail, t(2_000)).unwrap();
        r.begin(Stage::Variant, t(2_100)).unwrap();
        assert_eq!(r.processing_status, Status::Processing);
        assert_eq!(r.processing_attempts, 2);
        assert_eq!(r.processing_started_at, Some(t(2_000)));
        r.complete(Stage::Thumbnail, StageResult::default(), t(3_000))
            .unwrap();
        assert_eq!(r.processing_status, Status::Processing);
        assert_eq!(r.processing_completed_at, None);
        r.complete(Stage::Variant, StageResult::default(), t(4_000))
            .unwrap();
        assert_eq!(r.processing_status, Status::Completed);
        assert_eq!(r.processing_completed_at, Some(t(4_000)));
    }

    #[test]
    fn completing_twice_is_refused_not_overwritten() {
        let mut r = record();
        let now = Timestamp::now();
        r.begin(Stage::Thumbnail, now).unwrap();
        r.complete(Stage::Thumbnail, StageResult::default(), now)
            .unwrap();
        let err = r
            .complete(Stage::Thumbnail, StageResult::default(), now)
            .unwrap_err();
        assert_eq!(err.from, Status::Completed);
        assert!(r.begin(Stage::Thumbnail, now).is_err());
    }

    #[test]
    fn one_failed_stage_fails_the_image_and_retry_resets_only_that_stage() {
        let mut r = record();
        let now = Timestamp::now();
        r.begin(Stage::Thumbnail, now).unwrap();
        r.complete(Stage::Thumbnail, StageResult::default(), now)
            .unwrap();
        r.begin(Stage::Variant, now).unwrap();
        r.fail(Stage::Variant, ErrorKind::Permanent, "corrupt jpeg", now)
            .unwrap();
        assert_eq!(r.processing_status, Status::Failed);
        assert_eq!(r.processing_error.as_deref(), Some("corrupt jpeg"));
        assert_eq!(r.retry(now).unwrap(), vec![Stage::Variant]);
        assert_eq!(r.thumbnail_status, Status::Completed);
        assert_eq!(r.variant_status, Status::Pending);
        assert_eq!(r.processing_status, Status::Processing);
        assert_eq!(r.processing_error, None);
        assert_eq!(r.retry(now), Err(NotFailed(Status::Processing)));
    }

    #[test]
    fn a_retry_of_an_upload_taken_for_expired_counts_its_original_as_stored() {
        let mut r = record();
        r.upload_state = UploadState::AwaitingUpload;
        let now = Timestamp::now();
        r.expire_upload(now).unwrap();
        assert_eq!(r.upload_state, UploadState::Expired);
        assert_eq!(
            r.retry(now).unwrap(),
            vec![Stage::Thumbnail, Stage::Variant]
        );
        assert_eq!(
            r.upload_state,
            UploadState::Stored,
            "an original that came late is processed (and shown) after the retry"
        );
        assert_eq!(r.processing_status, Status::Pending);
        assert_eq!(r.error_kind, None);
    }

    #[test]
    fn a_retry_starts_the_sweepers_requeue_count_again() {
        let mut r = record();
        let now = Timestamp::now();
        r.note_sweep_requeue(now);
        r.note_sweep_requeue(now);
        assert_eq!(r.sweep_requeues, 2);
        r.fail(
            Stage::Thumbnail,
            ErrorKind::Transient,
            "never finished",
            now,
        )
        .unwrap();
        r.retry(now).unwrap();
        assert_eq!(r.sweep_requeues, 0);
    }

    #[test]
    fn an_upload_found_in_the_bucket_is_stored_once() {
        let mut r = record();
        r.upload_state = UploadState::AwaitingUpload;
        let later = Timestamp::from_unix_millis(9_000);
        assert!(r.upload_arrived(later));
        assert_eq!(r.upload_state, UploadState::Stored);
        assert_eq!(r.updated_at, later);
        assert!(!r.upload_arrived(Timestamp::from_unix_millis(10_000)));
        assert_eq!(r.updated_at, later);
    }

    #[test]
    fn a_row_written_before_the_requeue_count_reads_as_zero_and_zero_is_not_written() {
        let r = record();
        let json = serde_json::to_value(&r).unwrap();
        assert!(json.get("sweep_requeues").is_none(), "{json}");
        let back: ImageRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back.sweep_requeues, 0);
    }

    #[test]
    fn a_transient_error_is_kept_while_processing_and_cleared_on_success() {
        let mut r = record();
        let now = Timestamp::now();
        assert!(r.note_transient(Stage::Variant, "s3 timeout", now).is_err());
        r.begin(Stage::Variant, now).unwrap();
        r.note_transient(Stage::Variant, "s3 timeout", now).unwrap();
        assert_eq!(r.error_kind, Some(ErrorKind::Transient));
        r.begin(Stage::Variant, now).unwrap();
        r.complete(Stage::Variant, StageResult::default(), now)
            .unwrap();
        assert_eq!(r.error_kind, None);
    }
}
