//! Live notices: what the browser is told when an image's processing moves on, and how those
//! moments are read off the images table's change stream (old row vs new row). Pure: the
//! `notify` function numbers, stores and sends them.
//!
//! Exactly four notices exist (docs/ARCHITECTURE.md, "Live notices"):
//! - `image:processing:thumbnail_complete` when `thumbnail_status` becomes `completed`;
//! - `image:processing:variant_complete` when `variant_status` becomes `completed`;
//! - `image:processing:complete` when `processing_status` becomes `completed` (always after the
//!   stage notices derived from the same change);
//! - `image:processing:failed` when `processing_status` becomes `failed`, with `error`,
//!   `error_kind` and `retryable`.
//!
//! "Becomes" means: the new row has the value and the old row did not (a row that did not exist
//! counts as all-pending), so rewriting an already-completed row emits nothing, and an owner's
//! retry that completes later emits a fresh set.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::ids::ImageId;
use super::record::{Derivative, ImageRecord};
use super::status::{ErrorKind, Status};
use super::time::Timestamp;

/// How long a connection row counts: API Gateway closes a WebSocket after 2 hours.
pub const CONNECTION_TTL_SECS: i64 = 2 * 3600;
/// How long notices stay in the replay log.
pub const NOTICE_TTL_SECS: i64 = 24 * 3600;
/// How long a delivery (idempotency) record is kept: longer than a DynamoDB stream keeps a
/// record (24 h), so any redelivery still finds it.
pub const DELIVERY_TTL_SECS: i64 = 25 * 3600;

/// The kind of a notice; serialised as its wire name (`image:processing:…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NoticeType {
    /// The thumbnail set is stored.
    #[serde(rename = "image:processing:thumbnail_complete")]
    ThumbnailComplete,
    /// The display variants are stored.
    #[serde(rename = "image:processing:variant_complete")]
    VariantComplete,
    /// Both stages are done.
    #[serde(rename = "image:processing:complete")]
    Complete,
    /// Processing failed for good (a retry by the owner may still be possible).
    #[serde(rename = "image:processing:failed")]
    Failed,
}

impl NoticeType {
    /// All four, in the order they are emitted for one change.
    pub const ALL: [NoticeType; 4] = [
        NoticeType::ThumbnailComplete,
        NoticeType::VariantComplete,
        NoticeType::Complete,
        NoticeType::Failed,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeType::ThumbnailComplete => "image:processing:thumbnail_complete",
            NoticeType::VariantComplete => "image:processing:variant_complete",
            NoticeType::Complete => "image:processing:complete",
            NoticeType::Failed => "image:processing:failed",
        }
    }
}

impl fmt::Display for NoticeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The seven status fields of the row, as every notice carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    /// `processing_status`
    pub processing_status: Status,
    /// `thumbnail_status`
    pub thumbnail_status: Status,
    /// `variant_status`
    pub variant_status: Status,
    /// `processing_error`
    pub processing_error: Option<String>,
    /// `processing_attempts`
    pub processing_attempts: u32,
    /// `processing_started_at`
    pub processing_started_at: Option<Timestamp>,
    /// `processing_completed_at`
    pub processing_completed_at: Option<Timestamp>,
}

impl From<&ImageRecord> for StatusSnapshot {
    fn from(r: &ImageRecord) -> Self {
        StatusSnapshot {
            processing_status: r.processing_status,
            thumbnail_status: r.thumbnail_status,
            variant_status: r.variant_status,
            processing_error: r.processing_error.clone(),
            processing_attempts: r.processing_attempts,
            processing_started_at: r.processing_started_at,
            processing_completed_at: r.processing_completed_at,
        }
    }
}

/// One notice as sent on the socket and stored in the replay log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The kind (`type` on the wire).
    #[serde(rename = "type")]
    pub kind: NoticeType,
    /// The image it is about.
    pub image_id: ImageId,
    /// Per-owner sequence number: increasing, unique for the owner, possibly with gaps.
    pub seq: u64,
    /// When the change happened (the row's `updated_at`).
    pub at: Timestamp,
    /// The row's status fields after the change.
    pub status: StatusSnapshot,
    /// Thumbnails by name.
    pub thumbnails: BTreeMap<String, Derivative>,
    /// Variants by name.
    pub variants: BTreeMap<String, Derivative>,
    /// The thumbhash placeholder, once made.
    pub placeholder: Option<String>,
    /// `failed` only: the human-readable reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `failed` only: the machine class of the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// `failed` only: whether asking for a retry (`POST …/retry-processing`) can help.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

/// Fallback reason when a failed row carries none (it should not happen).
const UNKNOWN_FAILURE: &str = "image processing failed";

impl Notice {
    /// The notice of `kind` for the row as it is after the change, numbered `seq`.
    pub fn new(kind: NoticeType, record: &ImageRecord, seq: u64) -> Self {
        let failed = kind == NoticeType::Failed;
        Notice {
            kind,
            image_id: record.image_id,
            seq,
            at: record.updated_at,
            status: StatusSnapshot::from(record),
            thumbnails: record.thumbnails.clone(),
            variants: record.variants.clone(),
            placeholder: record.placeholder.clone(),
            error: failed.then(|| {
                record
                    .processing_error
                    .clone()
                    .unwrap_or_else(|| UNKNOWN_FAILURE.to_owned())
            }),
            error_kind: if failed { record.error_kind } else { None },
            retryable: failed.then(|| retryable(record.error_kind)),
        }
    }
}

/// Whether a failure of this kind is worth retrying.
///
/// - `transient` (the pipeline's retries ran out on throttling, timeouts, 5xx): yes — the cause
///   is expected to pass, so the owner's retry is likely to succeed;
/// - `permanent` (corrupt, unsupported, too many pixels) and `rejected` (the stored bytes are not
///   what was declared): no — the same bytes fail the same way; upload again instead;
/// - no kind recorded: yes, so a client never hides the retry button on missing data.
///
/// The retry endpoint itself accepts every failed image; `retryable` is advice to the client.
pub fn retryable(kind: Option<ErrorKind>) -> bool {
    !matches!(kind, Some(ErrorKind::Permanent | ErrorKind::Rejected))
}

/// The notices one change of a row calls for, in emission order. `old` is `None` for an insert.
/// A removal (no new row) calls for none, so callers do not get here with one.
pub fn transitions(old: Option<&ImageRecord>, new: &ImageRecord) -> Vec<NoticeType> {
    let became = |field: fn(&ImageRecord) -> Status, to: Status| {
        field(new) == to && old.map_or(Status::Pending, field) != to
    };
    let mut out = Vec::new();
    if became(|r| r.thumbnail_status, Status::Completed) {
        out.push(NoticeType::ThumbnailComplete);
    }
    if became(|r| r.variant_status, Status::Completed) {
        out.push(NoticeType::VariantComplete);
    }
    if became(|r| r.processing_status, Status::Completed) {
        out.push(NoticeType::Complete);
    }
    if became(|r| r.processing_status, Status::Failed) {
        out.push(NoticeType::Failed);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        ContentType, NewImage, ObjectKey, OwnerId, Stage, StageResult, UploadState,
    };

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(ms)
    }

    fn row() -> ImageRecord {
        let owner: OwnerId = "u1".parse().unwrap();
        ImageRecord::new(
            NewImage {
                image_id: ImageId::new(),
                owner_id: owner,
                filename: None,
                content_type: ContentType::Jpeg,
                byte_size: 10,
                sha256: None,
                upload_state: UploadState::Stored,
            },
            t(1_000),
        )
    }

    fn result(id: ImageId, name: &str) -> StageResult {
        StageResult {
            derivatives: BTreeMap::from([(
                name.to_owned(),
                Derivative {
                    key: ObjectKey::thumbnail(id, name, "webp"),
                    width: 64,
                    height: 48,
                    bytes: 900,
                    format: "webp".into(),
                },
            )]),
            source_size: Some((640, 480)),
            placeholder: Some("3OcRJYB4d3h/iIeHeEh3eIhw+j2w".into()),
        }
    }

    #[test]
    fn the_last_stage_completing_emits_its_stage_notice_then_complete() {
        let mut old = row();
        old.begin(Stage::Thumbnail, t(2_000)).unwrap();
        old.begin(Stage::Variant, t(2_000)).unwrap();
        old.complete(Stage::Thumbnail, result(old.image_id, "small"), t(3_000))
            .unwrap();
        let mut new = old.clone();
        new.complete(Stage::Variant, StageResult::default(), t(4_000))
            .unwrap();
        assert_eq!(
            transitions(Some(&old), &new),
            vec![NoticeType::VariantComplete, NoticeType::Complete]
        );
        assert_eq!(
            transitions(Some(&new), &new),
            vec![],
            "a rewrite says nothing"
        );
    }

    #[test]
    fn starting_work_or_noting_a_transient_error_emits_nothing() {
        let old = row();
        let mut new = old.clone();
        new.begin(Stage::Thumbnail, t(2_000)).unwrap();
        assert!(transitions(Some(&old), &new).is_empty());
        assert!(transitions(None, &old).is_empty(), "a fresh pending row");
        let before = new.clone();
        new.note_transient(Stage::Thumbnail, "s3 timeout", t(2_500))
            .unwrap();
        assert!(transitions(Some(&before), &new).is_empty());
    }

    #[test]
    fn an_insert_that_is_already_complete_emits_all_three_in_order() {
        let mut new = row();
        new.begin(Stage::Thumbnail, t(2_000)).unwrap();
        new.begin(Stage::Variant, t(2_000)).unwrap();
        new.complete(Stage::Thumbnail, StageResult::default(), t(3_000))
            .unwrap();
        new.complete(Stage::Variant, StageResult::default(), t(3_000))
            .unwrap();
        assert_eq!(
            transitions(None, &new),
            vec![
                NoticeType::ThumbnailComplete,
                NoticeType::VariantComplete,
                NoticeType::Complete
            ]
        );
    }

    #[test]
    fn failing_once_emits_one_failed_and_a_second_stage_failing_adds_none() {
        let mut old = row();
        old.begin(Stage::Thumbnail, t(2_000)).unwrap();
        old.begin(Stage::Variant, t(2_000)).unwrap();
        let mut new = old.clone();
        new.fail(
            Stage::Thumbnail,
            ErrorKind::Permanent,
            "not a decodable jpeg",
            t(3_000),
        )
        .unwrap();
        assert_eq!(transitions(Some(&old), &new), vec![NoticeType::Failed]);
        let mut newer = new.clone();
        newer
            .fail(Stage::Variant, ErrorKind::Permanent, "corrupt", t(3_100))
            .unwrap();
        assert!(transitions(Some(&new), &newer).is_empty());
    }

    #[test]
    fn a_failed_notice_carries_the_reason_its_kind_and_whether_to_retry() {
        let mut r = row();
        r.begin(Stage::Variant, t(2_000)).unwrap();
        r.fail(
            Stage::Variant,
            ErrorKind::Permanent,
            "not a decodable jpeg",
            t(3_000),
        )
        .unwrap();
        let n = Notice::new(NoticeType::Failed, &r, 7);
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(json["type"], "image:processing:failed");
        assert_eq!(json["seq"], 7);
        assert_eq!(json["error"], "not a decodable jpeg");
        assert_eq!(json["error_kind"], "permanent");
        assert_eq!(json["retryable"], false);
        assert_eq!(json["at"], "1970-01-01T00:00:03.000Z");
        assert_eq!(json["status"]["processing_status"], "failed");
        assert_eq!(json["status"].as_object().unwrap().len(), 7);
        assert_eq!(serde_json::from_value::<Notice>(json).unwrap(), n);
        assert!(retryable(Some(ErrorKind::Transient)));
        assert!(!retryable(Some(ErrorKind::Rejected)));
        assert!(retryable(None));
    }

    #[test]
    fn a_completion_notice_has_the_design_payload_and_no_failure_fields() {
        let mut r = row();
        r.begin(Stage::Thumbnail, t(2_000)).unwrap();
        r.complete(Stage::Thumbnail, result(r.image_id, "small"), t(3_000))
            .unwrap();
        let json = serde_json::to_value(Notice::new(NoticeType::ThumbnailComplete, &r, 1)).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            vec![
                "at",
                "image_id",
                "placeholder",
                "seq",
                "status",
                "thumbnails",
                "type",
                "variants"
            ]
        );
        assert_eq!(json["thumbnails"]["small"]["width"], 64);
        assert_eq!(json["placeholder"], "3OcRJYB4d3h/iIeHeEh3eIhw+j2w");
    }
}
