//! The sweep over in-memory ports, on a paused clock (its long polls and budget are tokio time):
//! dead-lettered rows end failed with a reason and their messages stay in the DLQ, every letter
//! of a large DLQ is seen in one sweep, a retried image is left alone; uploads that never came
//! expire, uploads that did are kept; rows whose message is gone are re-enqueued, then failed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use safelight::faults::{Faulty, Switch};
use safelight::sweep::{SweepPolicy, SweepPorts, SweepReport, Sweeper};
use safelight::testing::{MemoryDeadLetters, MemoryImages, MemoryQueue, MemoryStore};
use safelight::{
    ErrorKind, ImageId, ImageRecord, RetryMessage, Stage, StageResult, Status, Timestamp,
    UploadState,
};

const BUDGET: Duration = Duration::from_secs(50);

fn row(upload_state: UploadState, at: Timestamp) -> ImageRecord {
    testkit::image("u1")
        .size(10)
        .state(upload_state)
        .created(at)
        .build()
}

/// The fakes a sweep runs over; the test keeps them and looks at them afterwards.
#[derive(Default)]
struct World {
    images: MemoryImages,
    dlq: Faulty<MemoryDeadLetters, Switch>,
    store: Faulty<MemoryStore, Switch>,
    queue: MemoryQueue,
}

fn policy() -> SweepPolicy {
    SweepPolicy {
        stale_after: Duration::from_secs(600),
        presign_lifetime: Duration::from_secs(900),
        upload_grace: Duration::from_secs(300),
        ..SweepPolicy::default()
    }
}

impl World {
    fn sweeper(
        &self,
    ) -> Sweeper<
        '_,
        MemoryImages,
        Faulty<MemoryDeadLetters, Switch>,
        Faulty<MemoryStore, Switch>,
        MemoryQueue,
    > {
        Sweeper::new(
            SweepPorts {
                images: &self.images,
                dead_letters: &self.dlq,
                store: &self.store,
                queue: &self.queue,
            },
            policy(),
        )
    }

    async fn sweep(&self, now: Timestamp) -> SweepReport {
        self.sweeper().run(now, BUDGET).await.unwrap()
    }

    fn get(&self, id: ImageId) -> ImageRecord {
        self.images
            .rows()
            .into_iter()
            .find(|r| r.image_id == id)
            .unwrap()
    }

    fn dead_letter(&self, r: &ImageRecord, stage: Stage) {
        let body = RetryMessage::new(r.image_id, r.original_key.clone(), stage);
        self.dlq
            .inner()
            .push(stage, &serde_json::to_string(&body).unwrap());
    }
}

// ------------------------------------------------------------------------------ dead letters

#[tokio::test(start_paused = true)]
async fn a_row_left_processing_behind_a_dead_letter_ends_failed_and_the_message_stays() {
    let now = Timestamp::now();
    let long_ago = now.plus_secs(-3600);
    let w = World::default();
    let mut stuck = row(UploadState::Stored, long_ago);
    stuck.begin(Stage::Thumbnail, long_ago).unwrap();
    stuck
        .note_transient(Stage::Thumbnail, "object storage failed: timeout", long_ago)
        .unwrap();
    w.images.insert(stuck.clone());
    // Retried by its owner a minute ago: a fresh message is in flight, the old one in the DLQ.
    let retried = row(UploadState::Stored, now.plus_secs(-60));
    w.images.insert(retried.clone());
    for r in [&stuck, &retried] {
        w.dead_letter(r, Stage::Thumbnail);
    }

    let report = sweeper::handle(&w.sweeper(), BUDGET).await.unwrap();
    assert_eq!(report.dead_letters_seen, 2);
    assert_eq!(report.stages_failed, 1);
    assert!(report.finished, "{report:?}");
    let failed = w.get(stuck.image_id);
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
    assert_eq!(w.get(retried.image_id).thumbnail_status, Status::Pending);
    assert_eq!(
        w.dlq.inner().bodies(Stage::Thumbnail).len(),
        2,
        "messages stay in the DLQ"
    );
    assert_eq!(
        w.dlq.inner().hidden(Stage::Thumbnail),
        0,
        "and visible again"
    );

    // Sweeping again (a second later) changes nothing.
    let again = w.sweep(Timestamp::now().plus_secs(1)).await;
    assert_eq!(again.stages_failed, 0);
}

#[tokio::test(start_paused = true)]
async fn every_letter_of_a_dlq_larger_than_one_receive_is_seen_in_one_sweep_and_all_stay() {
    let now = Timestamp::now();
    let long_ago = now.plus_secs(-3600);
    let w = World::default();
    let mut ids = Vec::new();
    for _ in 0..25 {
        let mut r = row(UploadState::Stored, long_ago);
        r.begin(Stage::Variant, long_ago).unwrap();
        w.images.insert(r.clone());
        w.dead_letter(&r, Stage::Variant);
        ids.push(r.image_id);
    }

    let report = w.sweep(now).await;
    assert_eq!(report.dead_letters_seen, 25, "{report:?}");
    assert_eq!(report.stages_failed, 25, "{report:?}");
    for id in ids {
        assert_eq!(w.get(id).variant_status, Status::Failed);
    }
    assert_eq!(w.dlq.inner().bodies(Stage::Variant).len(), 25);
    assert_eq!(
        w.dlq.inner().hidden(Stage::Variant),
        0,
        "every letter visible again at the end"
    );
}

#[tokio::test(start_paused = true)]
async fn the_dlqs_are_read_with_long_polls_so_a_short_poll_that_samples_empty_misses_nothing() {
    let now = Timestamp::now();
    let long_ago = now.plus_secs(-3600);
    let w = World::default();
    *w.dlq.inner().short_polls_miss.lock().unwrap() = true;
    let mut r = row(UploadState::Stored, long_ago);
    r.begin(Stage::Thumbnail, long_ago).unwrap();
    w.images.insert(r.clone());
    w.dead_letter(&r, Stage::Thumbnail);

    let report = w.sweep(now).await;
    assert_eq!(report.dead_letters_seen, 1, "{report:?}");
    assert_eq!(w.get(r.image_id).thumbnail_status, Status::Failed);
    let receives = w.dlq.inner().receives.lock().unwrap().clone();
    assert!(
        receives
            .iter()
            .all(|(_, wait)| *wait >= Duration::from_secs(1)),
        "{receives:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_sweep_out_of_time_says_it_did_not_finish_and_leaves_the_letters_visible() {
    let now = Timestamp::now();
    let w = World::default();
    let r = row(UploadState::Stored, now.plus_secs(-3600));
    w.images.insert(r.clone());
    w.dead_letter(&r, Stage::Thumbnail);
    let report = w.sweeper().run(now, Duration::ZERO).await.unwrap();
    assert!(!report.finished, "{report:?}");
    assert_eq!(report.dead_letters_seen, 0);
    assert_eq!(w.dlq.inner().hidden(Stage::Thumbnail), 0);
}

#[tokio::test(start_paused = true)]
async fn letters_another_reader_holds_leave_the_sweep_unfinished_and_the_next_dlq_is_still_drained()
{
    let now = Timestamp::now();
    let long_ago = now.plus_secs(-3600);
    let w = World::default();
    let mut held_elsewhere = row(UploadState::Stored, long_ago);
    held_elsewhere.begin(Stage::Thumbnail, long_ago).unwrap();
    let mut variant = row(UploadState::Stored, long_ago);
    variant.begin(Stage::Variant, long_ago).unwrap();
    for r in [&held_elsewhere, &variant] {
        w.images.insert(r.clone());
    }
    w.dead_letter(&held_elsewhere, Stage::Thumbnail);
    w.dead_letter(&variant, Stage::Variant);
    // A retry-all run holds the thumbnails DLQ's letter for longer than this sweep lasts.
    w.dlq
        .inner()
        .hide_all(Stage::Thumbnail, Duration::from_secs(600));

    let report = w.sweep(now).await;
    assert!(!report.finished, "a letter was not seen: {report:?}");
    assert_eq!(report.dead_letters_seen, 1, "{report:?}");
    assert_eq!(w.get(variant.image_id).variant_status, Status::Failed);
    assert_eq!(
        w.get(held_elsewhere.image_id).thumbnail_status,
        Status::Processing
    );
}

#[tokio::test(start_paused = true)]
async fn a_dlq_depth_that_cannot_be_read_leaves_the_sweep_unfinished_but_not_stopped() {
    let now = Timestamp::now();
    let w = World {
        dlq: Faulty::new(MemoryDeadLetters::default(), Switch::only("depth")),
        ..World::default()
    };
    w.dlq.injector().fail(true);
    let mut dead = row(UploadState::Stored, now.plus_secs(-3600));
    dead.begin(Stage::Variant, now.plus_secs(-3600)).unwrap();
    w.images.insert(dead.clone());
    w.dead_letter(&dead, Stage::Variant);
    let stuck = row(UploadState::Stored, now.plus_secs(-7200));
    w.images.insert(stuck.clone());
    let abandoned = row(UploadState::AwaitingUpload, now.plus_secs(-1500));
    w.images.insert(abandoned.clone());

    let report = w.sweeper().run(now, BUDGET).await.unwrap();
    assert!(!report.finished, "{report:?}");
    assert_eq!(report.stages_failed, 1, "{report:?}");
    assert_eq!(report.uploads_expired, 1, "{report:?}");
    assert_eq!(report.stuck_requeued, 1, "{report:?}");
    assert_eq!(w.dlq.inner().hidden(Stage::Variant), 0, "released");
}

#[test]
fn the_budget_keeps_a_reserve_for_releasing_the_letters() {
    assert_eq!(
        sweeper::budget(Duration::from_secs(60)),
        Duration::from_secs(60) - sweeper::RESERVE
    );
    assert_eq!(sweeper::budget(Duration::from_secs(1)), Duration::ZERO);
}

// ------------------------------------------------------------------------------ uploads

#[tokio::test(start_paused = true)]
async fn an_upload_that_never_came_expires_after_the_link_lifetime_and_grace() {
    let now = Timestamp::now();
    let w = World::default();
    let abandoned = row(UploadState::AwaitingUpload, now.plus_secs(-1201));
    let recent = row(UploadState::AwaitingUpload, now.plus_secs(-600));
    let queued = row(UploadState::Stored, now.plus_secs(-1800));
    for r in [&abandoned, &recent, &queued] {
        w.images.insert(r.clone());
    }
    let report = w.sweep(now).await;
    assert_eq!(report.uploads_expired, 1);
    let expired = w.get(abandoned.image_id);
    assert_eq!(expired.processing_status, Status::Failed);
    assert_eq!(expired.upload_state, UploadState::Expired);
    assert_eq!(expired.error_kind, Some(ErrorKind::Rejected));
    assert!(expired.processing_error.unwrap().contains("expired"));
    assert_eq!(w.get(recent.image_id).processing_status, Status::Pending);
    assert_eq!(
        w.get(queued.image_id).upload_state,
        UploadState::Stored,
        "an uploaded image waiting for processing is not an expired upload"
    );
}

#[tokio::test(start_paused = true)]
async fn an_upload_that_arrived_while_its_processing_waits_is_marked_stored_not_expired() {
    let now = Timestamp::now();
    let w = World::default();
    // Uploaded in time; its processing is held back (an open circuit defers without a write).
    let arrived = row(UploadState::AwaitingUpload, now.plus_secs(-1500));
    w.store.inner().insert(
        arrived.original_key.as_str(),
        vec![0xff, 0xd8],
        "image/jpeg",
    );
    w.images.insert(arrived.clone());

    let report = w.sweep(now).await;
    assert_eq!(report.uploads_expired, 0, "{report:?}");
    assert_eq!(report.uploads_found, 1, "{report:?}");
    let kept = w.get(arrived.image_id);
    assert_eq!(kept.upload_state, UploadState::Stored);
    assert_eq!(kept.processing_status, Status::Pending);
    assert_eq!(kept.processing_error, None);
    assert_eq!(kept.updated_at, now);
}

#[tokio::test(start_paused = true)]
async fn a_bucket_that_cannot_answer_expires_nothing() {
    let now = Timestamp::now();
    let w = World::default();
    let unknown = row(UploadState::AwaitingUpload, now.plus_secs(-1500));
    w.images.insert(unknown.clone());
    w.store.injector().fail(true);
    assert!(w.sweeper().run(now, BUDGET).await.is_err());
    assert_eq!(
        w.get(unknown.image_id).upload_state,
        UploadState::AwaitingUpload
    );
}

// ------------------------------------------------------------------------------ stuck rows

#[tokio::test(start_paused = true)]
async fn rows_whose_message_is_gone_are_reenqueued_after_an_hour_and_recent_ones_are_left_alone() {
    let now = Timestamp::now();
    let two_hours_ago = now.plus_secs(-7200);
    let w = World::default();
    // Stored, but its event went to the EventBridge rule's DLQ.
    let waiting = row(UploadState::Stored, two_hours_ago);
    // Thumbnails done, the variant attempt's message gone.
    let mut half = row(UploadState::Stored, two_hours_ago);
    half.begin(Stage::Thumbnail, two_hours_ago).unwrap();
    half.complete(Stage::Thumbnail, StageResult::default(), two_hours_ago)
        .unwrap();
    half.begin(Stage::Variant, two_hours_ago).unwrap();
    // Written ten minutes ago: a live attempt or a message on its way; not the sweep's business.
    let mut live = row(UploadState::Stored, now.plus_secs(-600));
    live.begin(Stage::Thumbnail, now.plus_secs(-600)).unwrap();
    for r in [&waiting, &half, &live] {
        w.images.insert(r.clone());
    }

    let report = w.sweep(now).await;
    assert_eq!(report.stuck_requeued, 2, "{report:?}");
    assert_eq!(report.stuck_failed, 0, "{report:?}");
    let mut sent: Vec<(ImageId, Stage)> = w
        .queue
        .sent()
        .iter()
        .map(|m| (m.image_id, m.stage))
        .collect();
    sent.sort_by_key(|(id, s)| (*id, s.as_str()));
    let mut want = vec![
        (waiting.image_id, Stage::Thumbnail),
        (waiting.image_id, Stage::Variant),
        (half.image_id, Stage::Variant),
    ];
    want.sort_by_key(|(id, s)| (*id, s.as_str()));
    assert_eq!(sent, want);
    for id in [waiting.image_id, half.image_id] {
        let r = w.get(id);
        assert_eq!(r.sweep_requeues, 1);
        assert_eq!(r.updated_at, now, "the wait starts again");
        assert!(!r.processing_status.is_terminal());
    }
    assert_eq!(w.get(live.image_id), live, "a recent row is not touched");

    // The next sweep, five minutes later, leaves them alone: the re-enqueue just happened.
    let later = w.sweep(now.plus_secs(300)).await;
    assert_eq!(later.stuck_requeued, 0, "{later:?}");
    assert_eq!(w.queue.sent().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_row_that_stays_stuck_through_its_requeues_fails_as_never_finished() {
    let start = Timestamp::now();
    let w = World::default();
    let mut stuck = row(UploadState::Stored, start);
    stuck.begin(Stage::Thumbnail, start).unwrap();
    w.images.insert(stuck.clone());
    let max = SweepPolicy::default().max_sweep_requeues;

    // Every message sent for it is lost: a sweep each hour and a second.
    for hour in 1..=max {
        let now = start.plus_secs(i64::from(hour) * 3601);
        let report = w.sweep(now).await;
        assert_eq!(report.stuck_requeued, 1, "hour {hour}: {report:?}");
        assert_eq!(w.get(stuck.image_id).sweep_requeues, hour);
    }
    let now = start.plus_secs(i64::from(max + 1) * 3601);
    let report = w.sweep(now).await;
    assert_eq!(report.stuck_failed, 1, "{report:?}");
    assert_eq!(report.stuck_requeued, 0, "{report:?}");
    let failed = w.get(stuck.image_id);
    assert_eq!(failed.processing_status, Status::Failed);
    assert_eq!(failed.thumbnail_status, Status::Failed);
    assert_eq!(failed.variant_status, Status::Failed);
    assert_eq!(
        failed.error_kind,
        Some(ErrorKind::Transient),
        "the owner is offered a retry"
    );
    let reason = failed.processing_error.unwrap();
    assert!(reason.starts_with("processing never finished"), "{reason}");
    assert_eq!(w.queue.sent().len(), 2 * max as usize);

    // Failed rows are not the sweep's business any more.
    let after = w.sweep(now.plus_secs(7200)).await;
    assert_eq!((after.stuck_requeued, after.stuck_failed), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn an_upload_found_stored_whose_event_was_lost_is_reenqueued_an_hour_later() {
    let start = Timestamp::now();
    let w = World::default();
    let arrived = row(UploadState::AwaitingUpload, start);
    w.store.inner().insert(
        arrived.original_key.as_str(),
        vec![0xff, 0xd8],
        "image/jpeg",
    );
    w.images.insert(arrived.clone());

    let found_at = start.plus_secs(1500);
    assert_eq!(w.sweep(found_at).await.uploads_found, 1);
    assert!(w.queue.sent().is_empty(), "its event may still come");
    let report = w.sweep(found_at.plus_secs(3601)).await;
    assert_eq!(report.stuck_requeued, 1, "{report:?}");
    let stages: Vec<Stage> = w.queue.sent().iter().map(|m| m.stage).collect();
    assert_eq!(stages, vec![Stage::Thumbnail, Stage::Variant]);
}
