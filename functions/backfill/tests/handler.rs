//! The backfill against in-memory ports: a bucket of 50 originals in every state the migration
//! meets, the dry run, the real run, the run-once marker, `force`, interruption and resume.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::atomic::{AtomicBool, Ordering};

use backfill::{settings_from, Backfill};
use safelight::ops::backfill::{
    BackfillReport, BackfillRequest, BackfillSettings, LegacyRow, RunState, MIGRATION,
};
use safelight::ports::ObjectStore;
use safelight::testing::{MemoryImages, MemoryMarkers, MemoryQueue, MemoryStore};
use safelight::{
    ContentType, Derivative, ImageId, ImageRecord, ObjectKey, OwnerId, Stage, StageResult, Status,
    Timestamp, UploadState,
};
use serde_json::Value;

type Handler = Backfill<MemoryStore, MemoryImages, MemoryQueue, MemoryMarkers>;

fn settings() -> BackfillSettings {
    let mut s = settings_from(&Default::default()).unwrap();
    s.page = 10;
    s
}

/// The handler and the test's handles on its ports: clones of the fakes it was given.
struct Fixture {
    handler: Handler,
    store: MemoryStore,
    images: MemoryImages,
    queue: MemoryQueue,
    markers: MemoryMarkers,
}

fn handler() -> Fixture {
    let store = MemoryStore::default();
    let images = MemoryImages::default();
    let queue = MemoryQueue::default();
    let markers = MemoryMarkers::default();
    let handler = Backfill::new(
        store.clone(),
        images.clone(),
        queue.clone(),
        markers.clone(),
        settings(),
    );
    Fixture {
        handler,
        store,
        images,
        queue,
        markers,
    }
}

fn owner(i: usize) -> OwnerId {
    format!("user-{}", i % 4).parse().unwrap()
}

fn record(id: ImageId, who: &OwnerId) -> ImageRecord {
    testkit::records::image_of(who)
        .id(id)
        .filename("old.jpg")
        .age_secs(86_400)
        .build()
}

fn derivative(id: ImageId, name: &str) -> Derivative {
    Derivative {
        key: ObjectKey::thumbnail(id, name, "jpg"),
        width: 150,
        height: 100,
        bytes: 500,
        format: "jpeg".into(),
    }
}

/// What the bucket holds, by kind.
struct Seeded {
    no_row: Vec<ImageId>,
    half_done: Vec<ImageId>,
    legacy: Vec<ImageId>,
    completed: Vec<ImageRecord>,
}

/// 50 originals: 20 without a row, 10 half-done rows (thumbnails done, variants never started),
/// 5 legacy rows without the status fields (2 of them with thumbnails recorded), 15 completed;
/// plus an object that is not an image and one whose row belongs to someone else.
async fn seed(h: &Fixture) -> Seeded {
    let (store, images) = (&h.store, &h.images);
    let bytes = testkit::jpeg(64, 48);
    let mut s = Seeded {
        no_row: vec![],
        half_done: vec![],
        legacy: vec![],
        completed: vec![],
    };
    let old = Timestamp::now().plus_secs(-3600);
    for i in 0..50 {
        let id = ImageId::new();
        let who = owner(i);
        store
            .put(&ObjectKey::original(&who, id), bytes.clone(), "image/jpeg")
            .await
            .unwrap();
        match i {
            0..20 => s.no_row.push(id),
            20..30 => {
                let mut r = record(id, &who);
                r.begin(Stage::Thumbnail, old).unwrap();
                r.complete(Stage::Thumbnail, StageResult::default(), old)
                    .unwrap();
                r.updated_at = old;
                images.insert(r);
                s.half_done.push(id);
            }
            30..35 => {
                let mut row = LegacyRow {
                    owner_id: Some(who.to_string()),
                    filename: Some(format!("legacy-{i}.jpg")),
                    created_at: Some(old),
                    ..LegacyRow::default()
                };
                if i < 32 {
                    row.thumbnails
                        .insert("150.jpg".into(), derivative(id, "150"));
                }
                images.insert_legacy(id, row);
                s.legacy.push(id);
            }
            _ => {
                let mut r = record(id, &who);
                for st in Stage::ALL {
                    r.begin(st, old).unwrap();
                    r.complete(st, StageResult::default(), old).unwrap();
                }
                r.updated_at = old;
                images.insert(r.clone());
                s.completed.push(r);
            }
        }
    }
    store
        .put(
            &ObjectKey::original(&owner(0), ImageId::new()),
            b"not an image at all".to_vec(),
            "image/jpeg",
        )
        .await
        .unwrap();
    let id = ImageId::new();
    store
        .put(&ObjectKey::original(&owner(1), id), bytes, "image/jpeg")
        .await
        .unwrap();
    images.insert(record(id, &"someone-else".parse().unwrap()));
    s
}

async fn run(h: &Fixture, request: BackfillRequest) -> BackfillReport {
    h.handler
        .run(request, None, &AtomicBool::new(false), |_| {})
        .await
        .unwrap()
}

fn sorted(mut rows: Vec<ImageRecord>) -> Vec<ImageRecord> {
    rows.sort_by_key(|r| r.image_id);
    rows
}

#[tokio::test]
async fn a_dry_run_reports_what_the_migration_would_do_and_writes_nothing() {
    let h = handler();
    seed(&h).await;
    let rows_before = sorted(h.images.rows());
    let r = run(
        &h,
        BackfillRequest {
            dry_run: true,
            force: false,
        },
    )
    .await;
    let c = r.counts;
    assert_eq!(c.images_found, 52);
    assert_eq!(c.rows_created, 20);
    assert_eq!(c.rows_repaired, 5);
    assert_eq!(c.rows_requeued, 10);
    assert_eq!(c.completed, 15);
    assert_eq!(c.not_images, 1);
    assert_eq!(c.foreign_owner, 1);
    // 20 new x 2 stages, 10 half-done x variant, 3 legacy x 2 + 2 legacy x variant.
    assert_eq!(r.stages, (23, 35));
    assert_eq!(c.stages_enqueued, 58);
    assert_eq!(c.derivatives_missing, 23 * 3 + 35 * 4);
    assert!(r.estimate.compute_secs > 0.0 && r.estimate.lambda_usd > 0.0);
    assert!(
        (c.megapixels.get() - 35.0 * 0.003072).abs() < 1e-4,
        "{}",
        c.megapixels.get()
    );
    assert_eq!(r.refused, None);
    assert_eq!(r.start, "dry_run");

    assert_eq!(sorted(h.images.rows()), rows_before, "rows unchanged");
    assert_eq!(h.images.legacy_ids().len(), 5, "legacy rows unchanged");
    assert!(h.queue.sent().is_empty(), "nothing enqueued");
    assert_eq!(h.markers.marker(MIGRATION), None, "not even the marker");
}

#[tokio::test]
async fn the_run_creates_and_repairs_rows_enqueues_only_missing_stages_and_leaves_the_rest() {
    let h = handler();
    let s = seed(&h).await;
    let r = run(&h, BackfillRequest::default()).await;
    assert!(r.done);
    assert_eq!(r.start, "started");
    assert_eq!(r.counts.rows_created, 20);
    assert_eq!(r.counts.rows_repaired, 5);
    assert_eq!(r.counts.rows_requeued, 10);

    let sent = h.queue.sent();
    assert_eq!(sent.len(), 58);
    let stages_of = |id: ImageId| -> Vec<Stage> {
        let mut v: Vec<Stage> = sent
            .iter()
            .filter(|m| m.image_id == id)
            .map(|m| m.stage)
            .collect();
        v.sort_by_key(|s| s.as_str());
        v
    };
    let rows = h.images.rows();
    let row = |id: ImageId| rows.iter().find(|r| r.image_id == id).unwrap().clone();
    for id in &s.no_row {
        assert_eq!(stages_of(*id), vec![Stage::Thumbnail, Stage::Variant]);
        let r = row(*id);
        assert_eq!(r.processing_status, Status::Pending);
        assert_eq!(r.content_type, ContentType::Jpeg);
        assert_eq!(r.upload_state, UploadState::Stored);
        assert_eq!(r.processing_attempts, 0);
    }
    for id in &s.half_done {
        assert_eq!(
            stages_of(*id),
            vec![Stage::Variant],
            "only the missing stage"
        );
        assert_eq!(row(*id).thumbnail_status, Status::Completed);
    }
    for (i, id) in s.legacy.iter().enumerate() {
        let r = row(*id);
        assert_eq!(
            r.filename.as_deref(),
            Some(format!("legacy-{}.jpg", 30 + i).as_str())
        );
        if i < 2 {
            assert_eq!(stages_of(*id), vec![Stage::Variant]);
            assert_eq!(r.thumbnail_status, Status::Completed);
            assert_eq!(r.thumbnails.len(), 1, "recorded thumbnails kept");
        } else {
            assert_eq!(stages_of(*id), vec![Stage::Thumbnail, Stage::Variant]);
        }
    }
    assert!(h.images.legacy_ids().is_empty());
    for c in &s.completed {
        assert_eq!(&row(c.image_id), c, "completed images untouched");
        assert!(stages_of(c.image_id).is_empty());
    }
    assert!(sent
        .iter()
        .all(|m| m.key.as_str().starts_with("originals/user-")));
    let marker = h.markers.marker(MIGRATION).unwrap();
    assert_eq!(marker.state, RunState::Completed);
    assert_eq!(marker.counts.rows_created, 20);
    assert_eq!(marker.lease_until_ms, 0);
}

#[tokio::test]
async fn a_second_automatic_run_is_refused_and_force_changes_nothing_for_completed_images() {
    let h = handler();
    let s = seed(&h).await;
    let first = run(&h, BackfillRequest::default()).await;
    let first_id = first.run_id.clone().unwrap();
    let sent = h.queue.sent().len();

    let again = run(&h, BackfillRequest::default()).await;
    assert_eq!(again.start, "refused");
    let why = again.refused.unwrap();
    assert!(
        why.contains("already ran") && why.contains(&first_id),
        "{why}"
    );
    assert_eq!(h.queue.sent().len(), sent, "a refused run enqueues nothing");

    // The dry run says the same.
    let dry = run(
        &h,
        BackfillRequest {
            dry_run: true,
            force: false,
        },
    )
    .await;
    assert!(dry.refused.unwrap().contains("already ran"));

    // Everything completes (as the processors would), then a forced run changes nothing.
    let images = &h.images;
    for mut r in images.rows() {
        let t = Timestamp::now().plus_secs(-10);
        for st in Stage::ALL {
            if r.stage_status(st) == Status::Pending {
                r.begin(st, t).unwrap();
                r.complete(st, StageResult::default(), t).unwrap();
            }
        }
        r.updated_at = t;
        images.insert(r);
    }
    let before = sorted(images.rows());
    let forced = run(
        &h,
        BackfillRequest {
            dry_run: false,
            force: true,
        },
    )
    .await;
    assert_eq!(forced.start, "started");
    assert_ne!(forced.run_id.unwrap(), first_id);
    assert_eq!(forced.counts.completed, 50, "{:?}", forced.counts);
    assert_eq!(forced.counts.stages_enqueued, 0);
    assert_eq!(sorted(images.rows()), before);
    assert_eq!(h.queue.sent().len(), sent);
    assert!(s
        .completed
        .iter()
        .all(|c| before.iter().any(|r| r.image_id == c.image_id)));
}

#[tokio::test]
async fn an_interrupted_run_resumes_from_its_checkpoint_without_enqueueing_twice() {
    let h = handler();
    seed(&h).await;
    let interrupted = AtomicBool::new(false);
    let mut pages = 0;
    let first = h
        .handler
        .run(BackfillRequest::default(), None, &interrupted, |_| {
            pages += 1;
            if pages == 2 {
                interrupted.store(true, Ordering::Relaxed);
            }
        })
        .await
        .unwrap();
    assert!(!first.done);
    let marker = h.markers.marker(MIGRATION).unwrap();
    assert_eq!(marker.state, RunState::Stopped);
    assert!(marker.checkpoint.is_some());
    let partial = h.queue.sent().len();
    assert!(partial > 0 && partial < 58, "{partial}");

    // A new automatic start resumes the same run, not a second one.
    let second = run(&h, BackfillRequest::default()).await;
    assert_eq!(second.start, "resumed");
    assert_eq!(second.run_id, first.run_id);
    assert!(second.done);
    let sent = h.queue.sent();
    assert_eq!(sent.len(), 58, "every missing stage once");
    let mut keys: Vec<(ImageId, &str)> = sent
        .iter()
        .map(|m| (m.image_id, m.stage.as_str()))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 58);
    assert_eq!(second.counts.images_found, 52);
}

#[tokio::test]
async fn a_run_whose_process_died_is_taken_over_after_its_lease_but_not_before() {
    let h = handler();
    seed(&h).await;
    let interrupted = AtomicBool::new(true);
    // Take the run, stop at once, then make it look alive (as a crashed process leaves it).
    h.handler
        .run(BackfillRequest::default(), None, &interrupted, |_| {})
        .await
        .unwrap();
    let mut m = h.markers.marker(MIGRATION).unwrap();
    m.state = RunState::Running;
    m.lease_until_ms = Timestamp::now().unix_millis() + 60_000;
    h.markers.set(MIGRATION, m.clone());
    let busy = run(
        &h,
        BackfillRequest {
            dry_run: false,
            force: true,
        },
    )
    .await;
    assert_eq!(busy.start, "refused");
    assert!(busy.refused.unwrap().contains("in progress"));

    m.lease_until_ms = Timestamp::now().unix_millis() - 1;
    h.markers.set(MIGRATION, m);
    let taken = run(&h, BackfillRequest::default()).await;
    assert_eq!(taken.start, "resumed");
    assert!(taken.done);
}

#[test]
fn the_sample_events_are_backfill_requests() {
    for (name, dry_run, force) in [
        ("backfill.json", false, false),
        ("backfill-dry-run.json", true, false),
        ("backfill-force.json", false, true),
    ] {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let r: BackfillRequest = serde_json::from_value(v).unwrap();
        assert_eq!((r.dry_run, r.force), (dry_run, force), "{name}");
    }
}
