//! The sweep over in-memory ports: dead-lettered rows end failed with a reason and their
//! messages stay in the DLQ; a retried image is left alone; uploads that never came expire.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use safelight::sweep::{SweepPolicy, Sweeper};
use safelight::testing::{MemoryDeadLetters, MemoryImages};
use safelight::{
    ContentType, ErrorKind, ImageId, ImageRecord, NewImage, RetryMessage, Stage, Status, Timestamp,
    UploadState,
};

fn row(upload_state: UploadState, at: Timestamp) -> ImageRecord {
    ImageRecord::new(
        NewImage {
            image_id: ImageId::new(),
            owner_id: "u1".parse().unwrap(),
            filename: None,
            content_type: ContentType::Jpeg,
            byte_size: 10,
            sha256: None,
            upload_state,
        },
        at,
    )
}

fn sweeper(
    images: MemoryImages,
    dlq: MemoryDeadLetters,
) -> Sweeper<MemoryImages, MemoryDeadLetters> {
    Sweeper::new(
        images,
        dlq,
        SweepPolicy {
            stale_after: Duration::from_secs(600),
            presign_lifetime: Duration::from_secs(900),
            upload_grace: Duration::from_secs(300),
            ..SweepPolicy::default()
        },
    )
}

fn get(images: &MemoryImages, id: ImageId) -> ImageRecord {
    images
        .rows()
        .into_iter()
        .find(|r| r.image_id == id)
        .unwrap()
}

#[tokio::test]
async fn a_row_left_processing_behind_a_dead_letter_ends_failed_and_the_message_stays() {
    let now = Timestamp::now();
    let long_ago = now.plus_secs(-3600);
    let images = MemoryImages::default();
    let mut stuck = row(UploadState::Stored, long_ago);
    stuck.begin(Stage::Thumbnail, long_ago).unwrap();
    stuck
        .note_transient(Stage::Thumbnail, "object storage failed: timeout", long_ago)
        .unwrap();
    images.insert(stuck.clone());
    // Retried by its owner a minute ago: a fresh message is in flight, the old one in the DLQ.
    let retried = row(UploadState::Stored, now.plus_secs(-60));
    images.insert(retried.clone());
    let dlq = MemoryDeadLetters::default();
    for r in [&stuck, &retried] {
        let body = RetryMessage::new(r.image_id, r.original_key.clone(), Stage::Thumbnail);
        dlq.push(Stage::Thumbnail, &serde_json::to_string(&body).unwrap());
    }
    let s = sweeper(images, dlq);

    let report = sweeper::handle(&s).await.unwrap();
    assert_eq!(report.dead_letters_seen, 2);
    assert_eq!(report.stages_failed, 1);
    let (images, dlq) = (s.images(), s.dead_letters());
    let failed = get(images, stuck.image_id);
    assert_eq!(failed.thumbnail_status, Status::Failed);
    assert_eq!(
        failed.processing_status,
        Status::Failed,
        "retry is possible now"
    );
    assert_eq!(failed.error_kind, Some(ErrorKind::Transient));
    let reason = failed.processing_error.unwrap();
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert!(reason.contains("timeout"), "what it went through: {reason}");
    assert!(reason.contains("thumbnail dead-letter queue"), "{reason}");
    assert_eq!(
        get(images, retried.image_id).thumbnail_status,
        Status::Pending
    );
    assert_eq!(
        dlq.bodies(Stage::Thumbnail).len(),
        2,
        "messages stay in the DLQ"
    );

    // Sweeping again changes nothing.
    let again = sweeper::handle(&s).await.unwrap();
    assert_eq!(again.stages_failed, 0);
}

#[tokio::test]
async fn an_upload_that_never_came_expires_after_the_link_lifetime_and_grace() {
    let now = Timestamp::now();
    let images = MemoryImages::default();
    let abandoned = row(UploadState::AwaitingUpload, now.plus_secs(-1201));
    let recent = row(UploadState::AwaitingUpload, now.plus_secs(-600));
    let queued = row(UploadState::Stored, now.plus_secs(-7200));
    for r in [&abandoned, &recent, &queued] {
        images.insert(r.clone());
    }
    let s = sweeper(images, MemoryDeadLetters::default());
    let report = sweeper::handle(&s).await.unwrap();
    assert_eq!(report.uploads_expired, 1);
    let images = s.images();
    let expired = get(images, abandoned.image_id);
    assert_eq!(expired.processing_status, Status::Failed);
    assert_eq!(expired.upload_state, UploadState::Expired);
    assert_eq!(expired.error_kind, Some(ErrorKind::Rejected));
    assert!(expired.processing_error.unwrap().contains("expired"));
    assert_eq!(
        get(images, recent.image_id).processing_status,
        Status::Pending
    );
    assert_eq!(
        get(images, queued.image_id).upload_state,
        UploadState::Stored,
        "an uploaded image waiting for processing is not an expired upload"
    );
}
