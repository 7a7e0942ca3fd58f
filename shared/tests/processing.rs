//! The processing pipeline over in-memory ports: status transitions, derivatives that decode at
//! the right size, permanent vs transient failures, backoff, the last receive, duplicates, the
//! circuit breaker and panic isolation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use safelight::breaker::{BreakerConfig, CircuitState};
use safelight::engine::{default_thumbnail_specs, default_variant_specs, Limits};
use safelight::faults::{Faulty, Switch};
use safelight::ports::{
    ControlStore, ObjectMeta, ObjectRef, ObjectStore, PresignedPost, PresignedRequest, StoreError,
    StoredObject, UploadConstraints,
};
use safelight::processing::{Message, Policy, Ports, Processor};
use safelight::retry::Backoff;
use safelight::testing::{MemoryControl, MemoryImages, MemoryQueue, MemoryStore};
use safelight::{
    ContentType, ErrorKind, ImageId, ImageRecord, NewImage, ObjectKey, OwnerId, Stage, Status,
    Timestamp, UploadState,
};
use serde_json::json;

/// A port the processor runs on, shared with the test through the fault decorator: clones hold
/// the same port and the same switch, which fails the port while it is on.
type Shared<T> = Faulty<T, Switch>;

/// The processor under test, with the test's own handles to the ports it runs on.
struct Rig<S = MemoryStore, C = MemoryControl> {
    processor: Processor<Shared<S>, Shared<MemoryImages>, Shared<MemoryQueue>, Shared<C>>,
    store: Shared<S>,
    images: Shared<MemoryImages>,
    queue: Shared<MemoryQueue>,
    control: Shared<C>,
}

impl<S, C> Rig<S, C> {
    fn store(&self) -> &S {
        self.store.inner()
    }
    fn images(&self) -> &MemoryImages {
        self.images.inner()
    }
    fn queue(&self) -> &MemoryQueue {
        self.queue.inner()
    }
    fn control(&self) -> &C {
        self.control.inner()
    }
}

impl<S, C> std::ops::Deref for Rig<S, C> {
    type Target = Processor<Shared<S>, Shared<MemoryImages>, Shared<MemoryQueue>, Shared<C>>;
    fn deref(&self) -> &Self::Target {
        &self.processor
    }
}

fn policy() -> Policy {
    Policy {
        backoff: Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(60),
        },
        breaker: BreakerConfig {
            cooldown: Duration::from_millis(300),
            ..BreakerConfig::default()
        },
        ..Policy::default()
    }
}

fn rig<S: ObjectStore, C: ControlStore>(
    stage: Stage,
    store: S,
    control: C,
    policy: Policy,
) -> Rig<S, C> {
    let specs = match stage {
        Stage::Thumbnail => default_thumbnail_specs(),
        Stage::Variant => default_variant_specs(),
    };
    let (store, control) = (
        Faulty::new(store, Switch::default()),
        Faulty::new(control, Switch::default()),
    );
    let (images, queue) = (Shared::default(), Shared::default());
    let processor = Processor::new(
        stage,
        specs,
        Limits::default(),
        policy,
        Ports {
            store: store.clone(),
            images: images.clone(),
            queue: queue.clone(),
            control: control.clone(),
        },
    );
    Rig {
        processor,
        store,
        images,
        queue,
        control,
    }
}

fn processor_with<S: ObjectStore>(stage: Stage, store: S) -> Rig<S> {
    rig(stage, store, MemoryControl::default(), policy())
}

fn processor(stage: Stage) -> Rig {
    processor_with(stage, MemoryStore::default())
}

fn jpeg(width: u16, height: u16) -> Vec<u8> {
    let pixels: Vec<u8> = (0..u32::from(width) * u32::from(height))
        .flat_map(|i| {
            let (x, y) = (i % u32::from(width), i / u32::from(width));
            [(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8]
        })
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

/// A row for a stored original, and the original itself.
fn upload<S: ObjectStore>(
    p: &Rig<S>,
    put: impl FnOnce(&S, &ObjectKey, Vec<u8>),
    bytes: Vec<u8>,
    declared: ContentType,
) -> ImageRecord {
    let owner: OwnerId = "alice".parse().unwrap();
    let r = ImageRecord::new(
        NewImage {
            image_id: ImageId::new(),
            owner_id: owner,
            filename: Some("p.jpg".into()),
            content_type: declared,
            byte_size: bytes.len() as u64,
            sha256: None,
            upload_state: UploadState::AwaitingUpload,
        },
        Timestamp::now(),
    );
    let (store, images) = (p.store(), p.images());
    images.insert(r.clone());
    put(store, &r.original_key, bytes);
    r
}

fn put_mem(store: &MemoryStore, key: &ObjectKey, bytes: Vec<u8>) {
    store.insert(key.as_str(), bytes, "image/jpeg");
}

/// A processor whose store fails (or refuses) while the returned switch is on.
fn faulty_processor(stage: Stage) -> (Rig, Switch) {
    let p = processor(stage);
    let switch = p.store.injector().clone();
    (p, switch)
}

fn event(key: &ObjectKey, id: &str, receive_count: u32) -> Message {
    let body = json!({
        "version": "0", "detail-type": "Object Created", "source": "aws.s3",
        "detail": {"bucket": {"name": "b"}, "object": {"key": key.as_str(), "size": 1}}
    });
    Message {
        message_id: id.into(),
        receipt_handle: format!("rh-{id}-{receive_count}"),
        body: body.to_string(),
        receive_count,
        deferred_since: None,
    }
}

/// An "Object Created" event naming the version the write made (as AWS sends on a versioned
/// bucket).
fn event_of_version(key: &ObjectKey, id: &str, version: &str) -> Message {
    let body = json!({
        "version": "0", "detail-type": "Object Created", "source": "aws.s3",
        "detail": {"bucket": {"name": "b"},
                   "object": {"key": key.as_str(), "size": 1, "version-id": version}}
    });
    Message {
        message_id: id.into(),
        receipt_handle: format!("rh-{id}"),
        body: body.to_string(),
        receive_count: 1,
        deferred_since: None,
    }
}

fn row<S, C>(p: &Rig<S, C>, id: ImageId) -> ImageRecord {
    p.images()
        .rows()
        .into_iter()
        .find(|r| r.image_id == id)
        .unwrap()
}

fn longest_edge(bytes: &[u8]) -> u32 {
    let img = image::load_from_memory(bytes).expect("derivative decodes");
    img.width().max(img.height())
}

#[tokio::test]
async fn a_photo_yields_thumbnails_that_decode_at_the_configured_sizes() {
    let p = processor(Stage::Thumbnail);
    let r = upload(&p, put_mem, jpeg(1200, 800), ContentType::Jpeg);
    let failed = p.handle_batch(&[event(&r.original_key, "m1", 1)]).await;
    assert!(failed.is_empty());

    let done = row(&p, r.image_id);
    assert_eq!(done.thumbnail_status, Status::Completed);
    assert_eq!(done.variant_status, Status::Pending);
    assert_eq!(done.processing_status, Status::Processing);
    assert_eq!(done.upload_state, UploadState::Stored);
    assert_eq!(done.processing_attempts, 1);
    assert!(done.processing_started_at.is_some());
    assert_eq!((done.width, done.height), (Some(1200), Some(800)));
    assert!(done.placeholder.is_some());
    let store = p.store();
    for edge in [150, 300, 600] {
        let key = format!("thumbnails/{}/{edge}.jpg", r.image_id);
        let (bytes, ct) = store
            .object(&key)
            .unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(ct, "image/jpeg");
        assert_eq!(longest_edge(&bytes), edge);
        let d = &done.thumbnails[&format!("{edge}.jpg")];
        assert_eq!((d.width, d.height), (edge, edge * 2 / 3));
    }
}

#[tokio::test]
async fn variants_come_in_jpeg_and_webp_and_are_never_upscaled() {
    let p = processor(Stage::Variant);
    let r = upload(&p, put_mem, jpeg(1600, 900), ContentType::Jpeg);
    assert!(p
        .handle_batch(&[event(&r.original_key, "m1", 1)])
        .await
        .is_empty());
    let done = row(&p, r.image_id);
    assert_eq!(done.variant_status, Status::Completed);
    let store = p.store();
    for (file, edge) in [
        ("1280.jpg", 1280),
        ("1280.webp", 1280),
        ("2048.jpg", 1600),
        ("2048.webp", 1600),
    ] {
        let (bytes, _) = store
            .object(&format!("variants/{}/{file}", r.image_id))
            .unwrap();
        assert_eq!(longest_edge(&bytes), edge, "{file}");
        assert_eq!(done.variants[file].width, edge);
    }
}

#[tokio::test]
async fn a_duplicate_delivery_makes_one_set_of_objects_and_one_transition() {
    let p = processor(Stage::Thumbnail);
    let r = upload(&p, put_mem, jpeg(640, 480), ContentType::Jpeg);
    assert!(p
        .handle_batch(&[event(&r.original_key, "m1", 1)])
        .await
        .is_empty());
    let first = row(&p, r.image_id);
    let keys = p.store().keys();
    // The same event again, later, and as a second message in one batch.
    assert!(p
        .handle_batch(&[
            event(&r.original_key, "m2", 1),
            event(&r.original_key, "m3", 1)
        ])
        .await
        .is_empty());
    assert_eq!(
        row(&p, r.image_id),
        first,
        "a duplicate must not touch the row"
    );
    assert_eq!(p.store().keys(), keys);
}

#[tokio::test]
async fn a_duplicate_arriving_while_another_worker_holds_the_image_is_dropped() {
    let p = processor(Stage::Thumbnail);
    let r = upload(&p, put_mem, jpeg(640, 480), ContentType::Jpeg);
    let until = Timestamp::now().plus_secs(60);
    p.control()
        .hold_lease(Stage::Thumbnail, r.image_id, "other-message", until);
    assert!(p
        .handle_batch(&[event(&r.original_key, "m2", 1)])
        .await
        .is_empty());
    assert_eq!(
        row(&p, r.image_id).thumbnail_status,
        Status::Pending,
        "the lease holder does the work"
    );
    // Once the holder's lease has run out (it crashed), its redelivery — or any copy — proceeds.
    p.control().hold_lease(
        Stage::Thumbnail,
        r.image_id,
        "other-message",
        Timestamp::now().plus_secs(-1),
    );
    assert!(p
        .handle_batch(&[event(&r.original_key, "m2", 2)])
        .await
        .is_empty());
    assert_eq!(row(&p, r.image_id).thumbnail_status, Status::Completed);
}

#[tokio::test]
async fn a_crash_after_storing_derivatives_is_finished_by_the_redelivery() {
    let p = processor(Stage::Thumbnail);
    let r = upload(&p, put_mem, jpeg(640, 480), ContentType::Jpeg);
    // The state a crash leaves behind: the stage began, some objects exist, the row says processing.
    let mut crashed = row(&p, r.image_id);
    crashed.begin(Stage::Thumbnail, Timestamp::now()).unwrap();
    p.images().insert(crashed);
    p.store().insert(
        &format!("thumbnails/{}/150.jpg", r.image_id),
        b"partial".to_vec(),
        "image/jpeg",
    );
    assert!(p
        .handle_batch(&[event(&r.original_key, "m1", 2)])
        .await
        .is_empty());
    let done = row(&p, r.image_id);
    assert_eq!(done.thumbnail_status, Status::Completed);
    assert_eq!(done.processing_attempts, 2);
    let (bytes, _) = p
        .store()
        .object(&format!("thumbnails/{}/150.jpg", r.image_id))
        .unwrap();
    assert_eq!(longest_edge(&bytes), 150, "the partial object was replaced");
}

#[tokio::test]
async fn in_a_batch_of_ten_only_the_corrupt_file_fails_with_a_reason_and_is_not_retried() {
    let p = processor(Stage::Thumbnail);
    let mut records = Vec::new();
    for i in 0..10 {
        let bytes = if i == 4 {
            let mut b = jpeg(300, 200);
            b.truncate(400);
            b
        } else {
            jpeg(300, 200)
        };
        records.push(upload(&p, put_mem, bytes, ContentType::Jpeg));
    }
    let batch: Vec<Message> = records
        .iter()
        .enumerate()
        .map(|(i, r)| event(&r.original_key, &format!("m{i}"), 1))
        .collect();
    assert!(
        p.handle_batch(&batch).await.is_empty(),
        "a permanent failure is not retried"
    );
    for (i, r) in records.iter().enumerate() {
        let got = row(&p, r.image_id);
        if i == 4 {
            assert_eq!(got.thumbnail_status, Status::Failed);
            assert_eq!(got.processing_status, Status::Failed);
            assert_eq!(got.error_kind, Some(ErrorKind::Permanent));
            assert!(
                got.processing_error.as_deref().is_some_and(|e| e.len() > 5),
                "{:?}",
                got.processing_error
            );
            assert!(got.processing_completed_at.is_some());
        } else {
            assert_eq!(got.thumbnail_status, Status::Completed, "image {i}");
        }
    }
    assert!(p.queue().delays().is_empty());
}

#[tokio::test]
async fn bytes_that_are_not_the_declared_type_are_rejected() {
    let p = processor(Stage::Thumbnail);
    let r = upload(
        &p,
        put_mem,
        b"this is a text file, not a photo".to_vec(),
        ContentType::Jpeg,
    );
    assert!(p
        .handle_batch(&[event(&r.original_key, "m1", 1)])
        .await
        .is_empty());
    let got = row(&p, r.image_id);
    assert_eq!(got.thumbnail_status, Status::Failed);
    assert_eq!(got.error_kind, Some(ErrorKind::Rejected));
    assert_eq!(got.upload_state, UploadState::Rejected);
    assert!(got
        .processing_error
        .unwrap()
        .contains("not a recognisable image"));
}

#[tokio::test]
async fn a_missing_original_fails_for_good() {
    let p = processor(Stage::Thumbnail);
    let r = upload(&p, |_, _, _| {}, jpeg(10, 10), ContentType::Jpeg);
    assert!(p
        .handle_batch(&[event(&r.original_key, "m1", 1)])
        .await
        .is_empty());
    let got = row(&p, r.image_id);
    assert_eq!(got.thumbnail_status, Status::Failed);
    assert_eq!(
        got.processing_error.as_deref(),
        Some("the original file no longer exists")
    );
}

#[tokio::test]
async fn an_original_without_a_row_is_adopted_by_the_owner_in_its_key() {
    let p = processor(Stage::Thumbnail);
    let owner: OwnerId = "migrated-user".parse().unwrap();
    let id = ImageId::new();
    let key = ObjectKey::original(&owner, id);
    p.store()
        .insert(key.as_str(), jpeg(400, 300), "application/octet-stream");
    assert!(p.handle_batch(&[event(&key, "m1", 1)]).await.is_empty());
    let got = row(&p, id);
    assert_eq!(got.owner_id, owner);
    assert_eq!(got.content_type, ContentType::Jpeg);
    assert_eq!(got.thumbnail_status, Status::Completed);
}

#[tokio::test]
async fn an_outage_backs_off_with_growing_visibility_then_defers_on_the_last_receive() {
    let (p, switch) = faulty_processor(Stage::Thumbnail);
    let r = upload(&p, put_mem, jpeg(300, 200), ContentType::Jpeg);
    switch.fail(true);
    for receive in 1..=2 {
        let failed = p
            .handle_batch(&[event(&r.original_key, "m1", receive)])
            .await;
        assert_eq!(failed, vec!["m1".to_owned()]);
        let got = row(&p, r.image_id);
        assert_eq!(
            got.thumbnail_status,
            Status::Processing,
            "a transient failure is not failed yet"
        );
        assert_eq!(got.error_kind, Some(ErrorKind::Transient));
    }
    let delays = p.queue().delays();
    assert_eq!(delays.len(), 2);
    assert!(
        delays[0].2 <= Duration::from_secs(2) && delays[1].2 <= Duration::from_secs(4),
        "{delays:?}"
    );
    assert_eq!(
        delays[1].1, "rh-m1-2",
        "the visibility of the received copy is changed"
    );

    // The first images of an outage spend their receives before the circuit opens: the last
    // one waits like a deferral instead of failing the image for a fault that is not its own.
    let before = Timestamp::now();
    let failed = p.handle_batch(&[event(&r.original_key, "m1", 3)]).await;
    assert!(
        failed.is_empty(),
        "the received copy is deleted: {failed:?}"
    );
    let requeued = p.queue().requeued();
    assert_eq!(requeued.len(), 1, "{requeued:?}");
    assert!(
        requeued[0].2 >= policy().breaker.cooldown,
        "a fresh copy after the breaker's cool-down: {requeued:?}"
    );
    let since = p.queue().deferred_since.lock().unwrap()[0];
    assert!(
        since.is_some_and(|s| s >= before),
        "its deferral age starts now: {since:?}"
    );
    let got = row(&p, r.image_id);
    assert_eq!(got.thumbnail_status, Status::Processing);
    assert_eq!(got.error_kind, Some(ErrorKind::Transient));
}

#[tokio::test]
async fn an_outage_past_the_deferral_cap_fails_on_the_last_receive_and_hurries_to_the_dlq() {
    let (p, switch) = faulty_processor(Stage::Thumbnail);
    let r = upload(&p, put_mem, jpeg(300, 200), ContentType::Jpeg);
    switch.fail(true);
    let mut m = event(&r.original_key, "m1", 3);
    m.deferred_since = Some(Timestamp::now().plus_secs(-7 * 3600));
    let failed = p.handle_batch(&[m]).await;
    assert_eq!(
        failed,
        vec!["m1".to_owned()],
        "the last receive still fails, so SQS moves it to the DLQ"
    );
    assert!(p.queue().requeued().is_empty(), "not deferred again");
    let got = row(&p, r.image_id);
    assert_eq!(got.thumbnail_status, Status::Failed);
    assert_eq!(got.processing_status, Status::Failed);
    assert_eq!(got.error_kind, Some(ErrorKind::Transient));
    assert!(got
        .processing_error
        .unwrap()
        .starts_with("gave up after 3 attempts"));
    assert_eq!(
        p.queue().delays().last(),
        Some(&(Stage::Thumbnail, "rh-m1-3".to_owned(), Duration::ZERO)),
        "the failed last receive is made visible at once, so SQS dead-letters it within seconds"
    );
}

#[tokio::test]
async fn a_refusal_fails_on_the_last_receive_without_deferral() {
    let (p, switch) = faulty_processor(Stage::Thumbnail);
    let r = upload(&p, put_mem, jpeg(300, 200), ContentType::Jpeg);
    switch.refuse(true);
    for receive in 1..=2 {
        let failed = p
            .handle_batch(&[event(&r.original_key, "m1", receive)])
            .await;
        assert_eq!(failed, vec!["m1".to_owned()]);
    }
    let failed = p.handle_batch(&[event(&r.original_key, "m1", 3)]).await;
    assert_eq!(failed, vec!["m1".to_owned()]);
    assert!(
        p.queue().requeued().is_empty(),
        "access denied is not waited out"
    );
    let got = row(&p, r.image_id);
    assert_eq!(got.thumbnail_status, Status::Failed);
    let reason = got.processing_error.unwrap();
    assert!(
        reason.starts_with("gave up after 3 attempts") && reason.contains("refused"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_later_write_to_a_processed_original_is_removed_and_its_event_changes_nothing() {
    let p = processor(Stage::Thumbnail);
    let first = jpeg(300, 200);
    let r = upload(&p, put_mem, first.clone(), ContentType::Jpeg);
    let (store, images) = (p.store(), p.images());
    let v1 = store.versions(r.original_key.as_str())[0].clone();
    assert!(p
        .handle_batch(&[event_of_version(&r.original_key, "m1", &v1)])
        .await
        .is_empty());
    let done = row(&p, r.image_id);
    assert_eq!(done.thumbnail_status, Status::Completed);
    assert_eq!(
        done.original_version.as_deref(),
        Some(v1.as_str()),
        "the processed version is pinned"
    );

    // Another file of the same size lands on the key (a second POST of the form) and its event
    // arrives: ignored, and the version it made is gone, so the processed one is current again.
    let mut other = jpeg(200, 300);
    other.resize(first.len(), 0);
    let v2 = store.insert(r.original_key.as_str(), other, "image/jpeg");
    assert!(p
        .handle_batch(&[event_of_version(&r.original_key, "m2", &v2)])
        .await
        .is_empty());
    assert_eq!(
        row(&p, r.image_id),
        done,
        "the row is untouched: no write, no notice"
    );
    assert_eq!(store.versions(r.original_key.as_str()), vec![v1.clone()]);
    assert_eq!(store.object(r.original_key.as_str()).unwrap().0, first);
    assert_eq!(images.rows().len(), 1);
}

#[tokio::test]
async fn without_a_version_in_the_event_the_current_version_is_pinned_and_a_later_one_removed() {
    // The local emulator's EventBridge detail names no version.
    let p = processor(Stage::Thumbnail);
    let first = jpeg(300, 200);
    let r = upload(&p, put_mem, first.clone(), ContentType::Jpeg);
    let store = p.store();
    let v1 = store.versions(r.original_key.as_str())[0].clone();
    assert!(p
        .handle_batch(&[event(&r.original_key, "m1", 1)])
        .await
        .is_empty());
    let done = row(&p, r.image_id);
    assert_eq!(done.original_version.as_deref(), Some(v1.as_str()));

    let mut other = jpeg(200, 300);
    other.resize(first.len(), 0);
    store.insert(r.original_key.as_str(), other, "image/jpeg");
    assert!(p
        .handle_batch(&[event(&r.original_key, "m2", 1)])
        .await
        .is_empty());
    assert_eq!(row(&p, r.image_id), done);
    assert_eq!(store.versions(r.original_key.as_str()), vec![v1]);
    assert_eq!(store.object(r.original_key.as_str()).unwrap().0, first);
}

#[tokio::test]
async fn a_retry_reads_the_pinned_version_whatever_is_current() {
    let p = processor(Stage::Thumbnail);
    let first = jpeg(300, 200);
    let r = upload(&p, put_mem, first.clone(), ContentType::Jpeg);
    let store = p.store();
    let v1 = store.versions(r.original_key.as_str())[0].clone();
    // Pinned by the other stage's attempt; then a portrait file of the same size became current.
    let mut pinned = row(&p, r.image_id);
    pinned.original_version = Some(v1);
    p.images().insert(pinned);
    let mut other = jpeg(200, 300);
    other.resize(first.len(), 0);
    store.insert(r.original_key.as_str(), other, "image/jpeg");

    let retry = safelight::RetryMessage::new(r.image_id, r.original_key.clone(), Stage::Thumbnail);
    let message = Message {
        message_id: "retry".into(),
        receipt_handle: "rh".into(),
        body: serde_json::to_string(&retry).unwrap(),
        receive_count: 1,
        deferred_since: None,
    };
    assert!(p.handle_batch(&[message]).await.is_empty());
    let done = row(&p, r.image_id);
    assert_eq!(done.thumbnail_status, Status::Completed);
    assert_eq!(
        (done.width, done.height),
        (Some(300), Some(200)),
        "rendered from the pinned landscape original, not the current portrait one"
    );
}

#[tokio::test]
async fn a_transient_failure_then_success_completes_and_clears_the_error() {
    let (p, switch) = faulty_processor(Stage::Thumbnail);
    let r = upload(&p, put_mem, jpeg(300, 200), ContentType::Jpeg);
    switch.fail(true);
    assert_eq!(
        p.handle_batch(&[event(&r.original_key, "m1", 1)])
            .await
            .len(),
        1
    );
    switch.fail(false);
    assert!(p
        .handle_batch(&[event(&r.original_key, "m1", 2)])
        .await
        .is_empty());
    let got = row(&p, r.image_id);
    assert_eq!(got.thumbnail_status, Status::Completed);
    assert_eq!(got.processing_error, None);
    assert_eq!(got.processing_attempts, 2);
}

#[tokio::test]
async fn the_breaker_opens_at_the_fifth_failure_defers_without_failing_probes_once_and_closes() {
    let (p, switch) = faulty_processor(Stage::Thumbnail);
    let control = p.control();
    switch.fail(true);
    let rows: Vec<ImageRecord> = (0..6)
        .map(|_| upload(&p, put_mem, jpeg(64, 64), ContentType::Jpeg))
        .collect();
    for (i, r) in rows.iter().take(4).enumerate() {
        p.handle_batch(&[event(&r.original_key, &format!("m{i}"), 1)])
            .await;
        assert_eq!(
            control.breaker(Stage::Thumbnail).state,
            CircuitState::Closed,
            "after failure {}",
            i + 1
        );
    }
    p.handle_batch(&[event(&rows[4].original_key, "m4", 1)])
        .await;
    let b = control.breaker(Stage::Thumbnail);
    assert_eq!(
        b.state,
        CircuitState::Open,
        "the fifth failure opens the circuit"
    );
    assert_eq!(b.times_opened, 1);

    // While open: deferred as a delayed copy, acknowledged, not failed, no receive used.
    let failed = p
        .handle_batch(&[event(&rows[5].original_key, "m5", 1)])
        .await;
    assert!(failed.is_empty(), "a deferral is not a failure");
    let requeued = p.queue().requeued();
    assert_eq!(requeued.len(), 1);
    assert!(requeued[0].2 >= Duration::from_secs(1));
    assert_eq!(
        row(&p, rows[5].image_id).thumbnail_status,
        Status::Pending,
        "the row is untouched while open"
    );

    // After the cool-down exactly one probe goes through; a concurrent message is deferred.
    tokio::time::sleep(Duration::from_millis(400)).await;
    switch.fail(false);
    let mut probe = control.breaker(Stage::Thumbnail);
    let (admission, _) = probe.admit(Timestamp::now(), &policy().breaker);
    assert_eq!(
        admission,
        safelight::breaker::Admission::Probe,
        "the cool-down is over"
    );
    assert!(p
        .handle_batch(&[event(&rows[5].original_key, "m5-copy", 1)])
        .await
        .is_empty());
    assert_eq!(
        row(&p, rows[5].image_id).thumbnail_status,
        Status::Completed
    );
    let b = control.breaker(Stage::Thumbnail);
    assert_eq!(
        b.state,
        CircuitState::Closed,
        "the successful probe closes the circuit"
    );
    assert_eq!(b.times_opened, 1);
}

#[tokio::test]
async fn while_a_probe_is_in_flight_other_messages_are_deferred() {
    let p = processor(Stage::Thumbnail);
    let r = upload(&p, put_mem, jpeg(64, 64), ContentType::Jpeg);
    let b = safelight::breaker::Breaker {
        state: CircuitState::HalfOpen,
        until: Some(Timestamp::now().plus_secs(30)),
        ..Default::default()
    };
    p.control().set_breaker(Stage::Thumbnail, b);
    assert!(p
        .handle_batch(&[event(&r.original_key, "m1", 1)])
        .await
        .is_empty());
    assert_eq!(p.queue().requeued().len(), 1);
    assert_eq!(row(&p, r.image_id).thumbnail_status, Status::Pending);
}

/// A store whose reads panic, to show a panic stays inside its message; the first read of a
/// key containing "slow" takes a second and then dies, as a process killed at its deadline.
#[derive(Debug, Default)]
struct PanickyStore(MemoryStore, std::sync::atomic::AtomicBool);

impl ObjectStore for PanickyStore {
    async fn put(&self, key: &ObjectKey, body: Vec<u8>, ct: &str) -> Result<(), StoreError> {
        self.0.put(key, body, ct).await
    }
    async fn get(&self, object: ObjectRef<'_>) -> Result<StoredObject, StoreError> {
        let key = object.key;
        if key.as_str().contains("panic") {
            panic!("simulated bug");
        }
        if key.as_str().contains("slow") && !self.1.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            tokio::time::sleep(Duration::from_secs(1)).await;
            panic!("killed at the invocation's deadline");
        }
        self.0.get(object).await
    }
    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, StoreError> {
        self.0.head(key).await
    }
    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        self.0.delete(key).await
    }
    async fn delete_version(&self, key: &ObjectKey, v: &str) -> Result<(), StoreError> {
        self.0.delete_version(key, v).await
    }
    async fn presign_put(
        &self,
        key: &ObjectKey,
        c: &UploadConstraints,
        e: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        self.0.presign_put(key, c, e).await
    }
    async fn presign_post(
        &self,
        key: &ObjectKey,
        c: &UploadConstraints,
        e: Duration,
    ) -> Result<PresignedPost, StoreError> {
        self.0.presign_post(key, c, e).await
    }
}

#[tokio::test]
async fn a_panic_in_one_message_fails_only_that_message() {
    let p = processor_with(Stage::Thumbnail, PanickyStore::default());
    let put = |s: &PanickyStore, k: &ObjectKey, b: Vec<u8>| {
        s.0.insert(k.as_str(), b, "image/jpeg");
    };
    let good = upload(&p, put, jpeg(100, 100), ContentType::Jpeg);
    let owner: OwnerId = "panic".parse().unwrap();
    let bad_key = ObjectKey::original(&owner, ImageId::new());
    let failed = p
        .handle_batch(&[
            event(&bad_key, "bad", 1),
            event(&good.original_key, "good", 1),
        ])
        .await;
    assert_eq!(failed, vec!["bad".to_owned()]);
    assert_eq!(row(&p, good.image_id).thumbnail_status, Status::Completed);
}

#[tokio::test]
async fn test_events_are_skipped_and_unreadable_messages_kept_for_the_dlq() {
    let p = processor(Stage::Thumbnail);
    let test_event = Message {
        message_id: "t".into(),
        receipt_handle: "rh".into(),
        body: json!({"Service": "Amazon S3", "Event": "s3:TestEvent"}).to_string(),
        receive_count: 1,
        deferred_since: None,
    };
    assert!(p.handle_batch(&[test_event]).await.is_empty());
    let garbage = Message {
        message_id: "g".into(),
        receipt_handle: "rh".into(),
        body: "<xml/>".into(),
        receive_count: 1,
        deferred_since: None,
    };
    assert_eq!(p.handle_batch(&[garbage]).await, vec!["g".to_owned()]);
}

#[tokio::test]
async fn a_message_whose_previous_attempt_died_runs_once_more_alone_and_a_second_death_fails_it_as_crashed(
) {
    let p = processor(Stage::Thumbnail);
    let victim = upload(&p, put_mem, jpeg(64, 64), ContentType::Jpeg);
    let a = upload(&p, put_mem, jpeg(64, 48), ContentType::Jpeg);
    let b = upload(&p, put_mem, jpeg(48, 64), ContentType::Jpeg);
    // What a process that died while working on `victim` leaves (an out-of-memory kill caused
    // by another image, a host going away): its stage began, its message's lease held.
    let mut begun = row(&p, victim.image_id);
    begun.begin(Stage::Thumbnail, Timestamp::now()).unwrap();
    p.images().insert(begun);
    let until = Timestamp::now().plus_secs(-120); // long expired: the redelivery came later
    p.control()
        .hold_lease(Stage::Thumbnail, victim.image_id, "m-victim", until);

    let keep = p
        .handle_batch(&[
            event(&a.original_key, "m-a", 1),
            event(&victim.original_key, "m-victim", 2),
            event(&b.original_key, "m-b", 1),
        ])
        .await;
    assert!(keep.is_empty(), "nothing goes back to the queue: {keep:?}");
    assert_eq!(
        row(&p, victim.image_id).thumbnail_status,
        Status::Completed,
        "one crash is not the image's fault: it gets another attempt"
    );
    let requeued = p.queue().requeued();
    assert_eq!(requeued.len(), 2, "it ran alone: {requeued:?}");
    assert_eq!(row(&p, a.image_id).thumbnail_status, Status::Pending);

    // A second death in a row fails the stage with the reason, and the batch is not lost.
    let twice = upload(&p, put_mem, jpeg(64, 64), ContentType::Jpeg);
    let mut begun = row(&p, twice.image_id);
    begun.begin(Stage::Thumbnail, Timestamp::now()).unwrap();
    p.images().insert(begun);
    p.control().set_lease(
        Stage::Thumbnail,
        twice.image_id,
        safelight::ports::LeaseView {
            holder: "m-twice".into(),
            receive: 2,
            until,
            attempts: 2,
            ran_out_of_time: false,
        },
    );
    let keep = p
        .handle_batch(&[
            event(&twice.original_key, "m-twice", 3),
            event(&a.original_key, "m-a2", 1),
        ])
        .await;
    assert!(keep.is_empty(), "{keep:?}");
    let failed = row(&p, twice.image_id);
    assert_eq!(failed.thumbnail_status, Status::Failed);
    assert_eq!(failed.error_kind, Some(ErrorKind::Permanent));
    assert!(failed
        .processing_error
        .unwrap()
        .starts_with("processing crashed twice"));
    assert_eq!(row(&p, a.image_id).thumbnail_status, Status::Completed);
}

#[tokio::test]
async fn a_duplicate_delivery_of_a_running_message_waits_for_it_instead_of_failing_it() {
    let p = processor(Stage::Thumbnail);
    let r = upload(&p, put_mem, jpeg(64, 48), ContentType::Jpeg);
    let mut begun = row(&p, r.image_id);
    begun.begin(Stage::Thumbnail, Timestamp::now()).unwrap();
    p.images().insert(begun);
    // The first receive's attempt is running: its lease is live.
    let until = Timestamp::now().plus_secs(50);
    p.control()
        .hold_lease(Stage::Thumbnail, r.image_id, "m-dup", until);
    let keep = p.handle_batch(&[event(&r.original_key, "m-dup", 2)]).await;
    assert_eq!(
        keep,
        vec!["m-dup".to_owned()],
        "kept for after the live attempt"
    );
    let row_now = row(&p, r.image_id);
    assert_eq!(
        row_now.thumbnail_status,
        Status::Processing,
        "not failed as a crash"
    );
    let delays = p.queue().delays();
    assert_eq!(delays.len(), 1, "{delays:?}");
    assert!(
        delays[0].2 >= Duration::from_secs(49),
        "hidden until the lease runs out: {delays:?}"
    );
    assert_eq!(
        p.control()
            .lease_of(Stage::Thumbnail, r.image_id)
            .map(|l| l.receive),
        Some(1),
        "the live attempt keeps its lease"
    );
}

/// The control table whose lease releases fail the first `failures` times.
#[derive(Debug, Default)]
struct FlakyRelease(MemoryControl, std::sync::atomic::AtomicU32);

impl safelight::ports::ControlStore for FlakyRelease {
    async fn load_breaker(
        &self,
        stage: Stage,
    ) -> Result<(safelight::breaker::Breaker, u64), safelight::ports::RepoError> {
        self.0.load_breaker(stage).await
    }
    async fn save_breaker(
        &self,
        write: safelight::ports::BreakerWrite<'_>,
    ) -> Result<(), safelight::ports::RepoError> {
        self.0.save_breaker(write).await
    }
    async fn acquire_lease(
        &self,
        request: &safelight::ports::LeaseRequest<'_>,
    ) -> Result<safelight::ports::Lease, safelight::ports::RepoError> {
        self.0.acquire_lease(request).await
    }
    async fn mark_out_of_time(
        &self,
        lease: safelight::ports::LeaseKey,
        holder: &safelight::ports::Holder<'_>,
    ) -> Result<(), safelight::ports::RepoError> {
        self.0.mark_out_of_time(lease, holder).await
    }
    async fn lease(
        &self,
        lease: safelight::ports::LeaseKey,
    ) -> Result<Option<safelight::ports::LeaseView>, safelight::ports::RepoError> {
        self.0.lease(lease).await
    }
    async fn release_lease(
        &self,
        lease: safelight::ports::LeaseKey,
        holder: &safelight::ports::Holder<'_>,
    ) -> Result<(), safelight::ports::RepoError> {
        let left = self.1.load(std::sync::atomic::Ordering::SeqCst);
        if left > 0 {
            self.1.store(left - 1, std::sync::atomic::Ordering::SeqCst);
            return Err(safelight::ports::RepoError::Unavailable("throttled".into()));
        }
        self.0.release_lease(lease, holder).await
    }
}

#[tokio::test]
async fn a_lease_release_that_fails_twice_is_retried_so_the_next_receive_finds_no_crash() {
    let p = rig(
        Stage::Thumbnail,
        MemoryStore::default(),
        FlakyRelease(MemoryControl::default(), 2.into()),
        policy(),
    );
    let switch = p.store.injector().clone();
    let key = {
        let r = ImageRecord::new(
            NewImage {
                image_id: ImageId::new(),
                owner_id: "u1".parse().unwrap(),
                filename: None,
                content_type: ContentType::Jpeg,
                byte_size: jpeg(64, 48).len() as u64,
                sha256: None,
                upload_state: UploadState::Stored,
            },
            Timestamp::now(),
        );
        p.images().insert(r.clone());
        p.store()
            .insert(r.original_key.as_str(), jpeg(64, 48), "image/jpeg");
        r
    };
    // The bucket fails: the attempt ends without completing, so its lease must be released.
    switch.fail(true);
    let keep = p.handle_batch(&[event(&key.original_key, "m-r", 1)]).await;
    assert_eq!(keep, ["m-r"]);
    assert_eq!(p.control().1.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(
        p.control()
            .0
            .lease_of(Stage::Thumbnail, key.image_id)
            .is_none(),
        "released on the third try"
    );
    // So the next receive is not taken for a crash: it runs and completes.
    switch.fail(false);
    let keep = p.handle_batch(&[event(&key.original_key, "m-r", 2)]).await;
    assert!(keep.is_empty());
    let done = p
        .images()
        .rows()
        .into_iter()
        .find(|r| r.image_id == key.image_id);
    assert_eq!(done.unwrap().thumbnail_status, Status::Completed);
}

#[tokio::test]
async fn a_batch_near_its_invocation_deadline_resends_what_it_did_not_start() {
    let p = processor(Stage::Thumbnail);
    let a = upload(&p, put_mem, jpeg(64, 48), ContentType::Jpeg);
    let b = upload(&p, put_mem, jpeg(48, 64), ContentType::Jpeg);
    // One second left, less than the reserve one image needs.
    let deadline = Timestamp::now().plus_secs(1);
    let keep = p
        .handle_batch_until(
            &[
                event(&a.original_key, "m-a", 1),
                event(&b.original_key, "m-b", 3),
            ],
            Some(deadline),
        )
        .await;
    assert!(keep.is_empty(), "re-sent copies replace them: {keep:?}");
    let requeued = p.queue().requeued();
    assert_eq!(requeued.len(), 2);
    assert!(requeued.iter().all(|(_, _, delay)| delay.is_zero()));
    assert_eq!(row(&p, a.image_id).thumbnail_status, Status::Pending);
    assert_eq!(row(&p, b.image_id).thumbnail_status, Status::Pending);
}

#[tokio::test]
async fn a_body_of_another_size_than_the_upload_declared_is_rejected() {
    let p = processor(Stage::Thumbnail);
    let r = upload(&p, put_mem, jpeg(64, 48), ContentType::Jpeg);
    // Replaced by a smaller file of the same type after the row was made.
    p.store()
        .insert(r.original_key.as_str(), jpeg(16, 16), "image/jpeg");
    assert!(p
        .handle_batch(&[event(&r.original_key, "m1", 1)])
        .await
        .is_empty());
    let failed = row(&p, r.image_id);
    assert_eq!(failed.thumbnail_status, Status::Failed);
    assert_eq!(failed.error_kind, Some(ErrorKind::Rejected));
    assert!(failed
        .processing_error
        .unwrap()
        .contains("not the declared"));
}

#[tokio::test]
async fn a_half_open_probe_that_finds_nothing_to_do_does_not_close_the_circuit() {
    let p = processor(Stage::Thumbnail);
    let r = upload(&p, put_mem, jpeg(64, 64), ContentType::Jpeg);
    let mut done = row(&p, r.image_id);
    done.begin(Stage::Thumbnail, Timestamp::now()).unwrap();
    done.complete(Stage::Thumbnail, Default::default(), Timestamp::now())
        .unwrap();
    p.images().insert(done);
    let open = safelight::breaker::Breaker {
        state: CircuitState::Open,
        until: Some(Timestamp::now().plus_secs(-1)),
        times_opened: 1,
        ..Default::default()
    };
    p.control().set_breaker(Stage::Thumbnail, open);
    assert!(p
        .handle_batch(&[event(&r.original_key, "dup", 1)])
        .await
        .is_empty());
    assert_ne!(
        p.control().breaker(Stage::Thumbnail).state,
        CircuitState::Closed,
        "a duplicate touched no dependency: it proves nothing"
    );
}

/// A row for a stored original of `owner` in a processor over a [`PanickyStore`].
fn upload_as(p: &Rig<PanickyStore>, owner: &str, bytes: Vec<u8>) -> ImageRecord {
    let owner: OwnerId = owner.parse().unwrap();
    let r = ImageRecord::new(
        NewImage {
            image_id: ImageId::new(),
            owner_id: owner,
            filename: None,
            content_type: ContentType::Jpeg,
            byte_size: bytes.len() as u64,
            sha256: None,
            upload_state: UploadState::Stored,
        },
        Timestamp::now(),
    );
    p.images().insert(r.clone());
    p.store()
        .0
        .insert(r.original_key.as_str(), bytes, "image/jpeg");
    r
}

#[tokio::test]
async fn an_attempt_still_running_at_its_deadline_is_retried_alone_and_completes() {
    let p = rig(
        Stage::Thumbnail,
        PanickyStore::default(),
        MemoryControl::default(),
        Policy {
            deadline_reserve: Duration::from_millis(500),
            out_of_time_margin: Duration::from_millis(500),
            ..policy()
        },
    );
    let slow = upload_as(&p, "slow", jpeg(64, 48));
    // Its read takes longer than the time left: the clock marks the lease, then the process
    // "dies" at the deadline (the panic stands for Lambda ending the invocation).
    let deadline = Timestamp::from_unix_millis(Timestamp::now().unix_millis() + 800);
    let keep = p
        .handle_batch_until(&[event(&slow.original_key, "m-slow", 1)], Some(deadline))
        .await;
    assert_eq!(keep, vec!["m-slow".to_owned()]);
    let lease = p
        .control()
        .lease_of(Stage::Thumbnail, slow.image_id)
        .expect("the dead attempt left its lease");
    assert!(
        lease.ran_out_of_time,
        "marked before the deadline: {lease:?}"
    );
    assert_eq!(row(&p, slow.image_id).thumbnail_status, Status::Processing);
    // The redelivery comes after the visibility timeout, long after the lease ran out.
    let mut expired = lease.clone();
    expired.until = Timestamp::now().plus_secs(-120);
    p.control()
        .set_lease(Stage::Thumbnail, slow.image_id, expired);

    // The redelivery comes back in a batch with others: it runs first and alone, the others are
    // re-sent as fresh copies, and this time it completes.
    let a = upload_as(&p, "alice", jpeg(48, 64));
    let b = upload_as(&p, "bob", jpeg(64, 64));
    let keep = p
        .handle_batch(&[
            event(&a.original_key, "m-a", 1),
            event(&slow.original_key, "m-slow", 2),
            event(&b.original_key, "m-b", 1),
        ])
        .await;
    assert!(keep.is_empty(), "{keep:?}");
    let done = row(&p, slow.image_id);
    assert_eq!(done.thumbnail_status, Status::Completed, "{done:?}");
    let requeued: Vec<String> = p
        .queue()
        .requeued()
        .into_iter()
        .map(|(_, body, _)| body)
        .collect();
    assert_eq!(
        requeued.len(),
        2,
        "the rest of the batch is re-sent: {requeued:?}"
    );
    assert!(requeued.iter().any(|b| b.contains(a.original_key.as_str())));
    assert!(requeued.iter().any(|body| body.contains(b_key(&b))));
    assert_eq!(row(&p, a.image_id).thumbnail_status, Status::Pending);
    // A completed stage keeps its lease until it runs out (no release write): it is never
    // reset, and the row says it ended.
    assert_eq!(row(&p, slow.image_id).thumbnail_status, Status::Completed);
    assert!(
        p.control()
            .lease_of(Stage::Thumbnail, slow.image_id)
            .is_some_and(|l| l.holder == "m-slow" && l.receive == 2),
        "left to run out"
    );
}

fn b_key(r: &ImageRecord) -> &str {
    r.original_key.as_str()
}

#[tokio::test]
async fn an_image_that_ran_out_of_time_twice_fails_with_the_reason() {
    let p = processor(Stage::Thumbnail);
    let r = upload(&p, put_mem, jpeg(64, 64), ContentType::Jpeg);
    let mut begun = row(&p, r.image_id);
    begun.begin(Stage::Thumbnail, Timestamp::now()).unwrap();
    p.images().insert(begun);
    p.control().set_lease(
        Stage::Thumbnail,
        r.image_id,
        safelight::ports::LeaseView {
            holder: "m-slow".into(),
            receive: 2,
            until: Timestamp::now().plus_secs(-120),
            attempts: 2,
            ran_out_of_time: true,
        },
    );
    let keep = p.handle_batch(&[event(&r.original_key, "m-slow", 3)]).await;
    assert!(
        keep.is_empty(),
        "failed for good, not dead-lettered: {keep:?}"
    );
    let failed = row(&p, r.image_id);
    assert_eq!(failed.thumbnail_status, Status::Failed);
    assert_eq!(failed.error_kind, Some(ErrorKind::Permanent));
    assert!(
        failed
            .processing_error
            .as_deref()
            .unwrap_or_default()
            .starts_with("processing ran out of time twice"),
        "{failed:?}"
    );
    assert!(p.control().lease_of(Stage::Thumbnail, r.image_id).is_none());
}
