//! The thumbnail handler on the sample SQS events (EventBridge and classic S3 bodies) over
//! in-memory ports: the partial batch response and the row it leaves.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use aws_lambda_events::sqs::SqsEvent;
use safelight::engine::{default_thumbnail_specs, Limits};
use safelight::faults::{Faulty, Switch};
use safelight::processing::{Policy, Ports, Processor};
use safelight::testing::{MemoryControl, MemoryImages, MemoryQueue, MemoryStore};
use safelight::{ImageRecord, Status, UploadState};
use testkit::corpus as fixture;
use thumbnail::{handle_sqs, STAGE};

fn sample(name: &str) -> SqsEvent {
    serde_json::from_value(testkit::event(name)).unwrap()
}

/// The thumbnail processor over the fakes, with the test's own handles to its bucket and table
/// (shared through the fault decorator: clones hold the same port and switch); the store fails
/// while its switch is on.
struct Rig {
    processor: Processor<
        Faulty<MemoryStore, Switch>,
        Faulty<MemoryImages, Switch>,
        MemoryQueue,
        MemoryControl,
    >,
    store: Faulty<MemoryStore, Switch>,
    images: Faulty<MemoryImages, Switch>,
}

fn processor() -> Rig {
    let (store, images) = (Faulty::default(), Faulty::default());
    let ports = Ports {
        store: Faulty::clone(&store),
        images: Faulty::clone(&images),
        queue: MemoryQueue::default(),
        control: MemoryControl::default(),
    };
    let processor = Processor::new(
        STAGE,
        default_thumbnail_specs(),
        Limits::default(),
        Policy::default(),
        ports,
    );
    Rig {
        processor,
        store,
        images,
    }
}

/// Stores `bytes` as the original the sample events name, with its row.
fn seed(p: &Rig, bytes: Vec<u8>) -> ImageRecord {
    let r = testkit::image("demo-user")
        .id("01KB4XV6Z0R8QW3M5T7N9P1C2D".parse().unwrap())
        .size(bytes.len() as u64)
        .state(UploadState::AwaitingUpload)
        .build();
    p.store
        .inner()
        .insert(r.original_key.as_str(), bytes, "image/jpeg");
    p.images.inner().insert(r.clone());
    r
}

#[tokio::test]
async fn the_eventbridge_sample_completes_the_thumbnail_stage() {
    let p = processor();
    let r = seed(&p, fixture("orientation-6.jpg"));
    let response = handle_sqs(
        &p.processor,
        &sample("sqs-thumbnails-eventbridge.json"),
        None,
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    let row = p.images.inner().rows().pop().unwrap();
    assert_eq!(row.image_id, r.image_id);
    assert_eq!(row.thumbnail_status, Status::Completed);
    assert_eq!(row.thumbnails.len(), 3);
}

#[tokio::test]
async fn the_classic_s3_sample_is_understood_too_and_a_store_outage_is_a_batch_item_failure() {
    let p = processor();
    seed(&p, fixture("orientation-1.jpg"));
    p.store.injector().fail(true);
    let response = handle_sqs(
        &p.processor,
        &sample("sqs-variants-s3-notification.json"),
        None,
    )
    .await;
    let ids: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(ids, vec!["059f36b4-87a3-44ab-83d2-661975830a7d"]);
    assert_eq!(
        p.images.inner().rows()[0].thumbnail_status,
        Status::Processing
    );
}
