//! The notify handler against in-memory ports: which notices a change produces, who gets them,
//! and that redelivery, failures and stale connections never duplicate or lose one.

// Test helpers panic on broken fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use notify::{delivery_key, Notify};
use safelight::faults::{Faulty, Switch};
use safelight::ports::Connection;
use safelight::ports::ThroughputLog;
use safelight::testing::{MemoryConnections, MemoryNotices, MemoryPoster, MemoryThroughput};
use safelight::{ErrorKind, ImageRecord, NoticeType, OwnerId, Stage, StageResult, Timestamp};
use serde_json::{json, Value};

type Handler =
    Notify<MemoryConnections, Faulty<MemoryNotices, Switch>, MemoryPoster, MemoryThroughput>;

/// The handler and the test's handles on its ports: clones of the fakes it was given.
struct Fixture {
    handler: Handler,
    connections: MemoryConnections,
    notices: MemoryNotices,
    /// Fails every call to the notice log while on.
    log_outage: Switch,
    poster: MemoryPoster,
    throughput: MemoryThroughput,
}

fn handler() -> Fixture {
    let connections = MemoryConnections::default();
    let notices = MemoryNotices::default();
    let log_outage = Switch::default();
    let poster = MemoryPoster::default();
    let throughput = MemoryThroughput::default();
    let handler = Notify::new(
        connections.clone(),
        Faulty::new(notices.clone(), log_outage.clone()),
        poster.clone(),
        throughput.clone(),
    );
    Fixture {
        handler,
        connections,
        notices,
        log_outage,
        poster,
        throughput,
    }
}

impl Fixture {
    async fn handle(&self, event: &Event, deadline: Instant) -> DynamoDbEventResponse {
        self.handler.handle(event, deadline).await
    }
}

/// A deadline that never interferes.
fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

fn owner(name: &str) -> OwnerId {
    name.parse().unwrap()
}

fn connect(h: &Fixture, id: &str, who: &str) {
    let now = Timestamp::now();
    h.connections.insert(Connection {
        connection_id: id.into(),
        owner: owner(who),
        connected_at: now,
        expires_at: now.plus_secs(7200),
    });
}

fn row(who: &str) -> ImageRecord {
    testkit::image(who).filename("harbour.jpg").build()
}

/// The row's history as the pipeline writes it: started, thumbnail done, variant done.
fn history(who: &str) -> (ImageRecord, ImageRecord, ImageRecord) {
    let mut started = row(who);
    let now = Timestamp::now();
    started.begin(Stage::Thumbnail, now).unwrap();
    started.begin(Stage::Variant, now).unwrap();
    let mut thumb = started.clone();
    thumb
        .complete(Stage::Thumbnail, StageResult::default(), now)
        .unwrap();
    let mut done = thumb.clone();
    done.complete(Stage::Variant, StageResult::default(), now)
        .unwrap();
    (started, thumb, done)
}

fn image(r: &ImageRecord) -> Value {
    let item: serde_dynamo::Item = serde_dynamo::to_item(r).unwrap();
    serde_json::to_value(item).unwrap()
}

/// A stream batch: (event id, old row, new row) per record.
fn batch(records: &[(&str, Option<&ImageRecord>, Option<&ImageRecord>)]) -> Event {
    let records: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, (id, old, new))| {
            let mut change = json!({
                "ApproximateCreationDateTime": 1_795_870_801,
                "Keys": {"image_id": {"S": "x"}},
                "SequenceNumber": format!("{}", 1000 + i),
                "SizeBytes": 100,
                "StreamViewType": "NEW_AND_OLD_IMAGES"
            });
            if let Some(o) = old {
                change["OldImage"] = image(o);
            }
            if let Some(n) = new {
                change["NewImage"] = image(n);
            }
            let name = match (old, new) {
                (None, Some(_)) => "INSERT",
                (Some(_), None) => "REMOVE",
                _ => "MODIFY",
            };
            json!({"eventID": id, "eventName": name, "eventSource": "aws:dynamodb",
                   "awsRegion": "eu-west-1", "dynamodb": change})
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn types(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            f["type"]
                .as_str()
                .unwrap()
                .trim_start_matches("image:processing:")
                .to_owned()
        })
        .collect()
}

fn seqs(frames: &[Value]) -> Vec<u64> {
    frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect()
}

fn failures(r: &DynamoDbEventResponse) -> Vec<String> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect()
}

#[tokio::test]
async fn an_upload_history_sends_thumbnail_then_variant_then_complete_to_every_owner_socket() {
    let h = handler();
    connect(&h, "a-laptop", "alice");
    connect(&h, "a-phone", "alice");
    let (started, thumb, done) = history("alice");
    let r = h
        .handle(
            &batch(&[
                ("e1", None, Some(&started)),
                ("e2", Some(&started), Some(&thumb)),
                ("e3", Some(&thumb), Some(&done)),
            ]),
            far(),
        )
        .await;
    assert!(r.batch_item_failures.is_empty());
    for socket in ["a-laptop", "a-phone"] {
        let frames = h.poster.frames_to(socket);
        assert_eq!(
            types(&frames),
            ["thumbnail_complete", "variant_complete", "complete"]
        );
        assert_eq!(seqs(&frames), [1, 2, 3]);
        assert_eq!(frames[2]["image_id"], done.image_id.to_string());
        assert_eq!(frames[2]["status"]["processing_status"], "completed");
    }
    let stored = h.notices.stored(&owner("alice"));
    assert_eq!(
        stored.iter().map(|n| n.seq).collect::<Vec<_>>(),
        [1, 2, 3],
        "every notice is in the replay log"
    );
}

#[tokio::test]
async fn another_owner_gets_nothing_and_keeps_an_own_sequence() {
    let h = handler();
    connect(&h, "alice-1", "alice");
    connect(&h, "bob-1", "bob");
    let (a_started, a_thumb, _) = history("alice");
    let (b_started, b_thumb, _) = history("bob");
    h.handle(
        &batch(&[
            ("e1", Some(&a_started), Some(&a_thumb)),
            ("e2", Some(&b_started), Some(&b_thumb)),
        ]),
        far(),
    )
    .await;
    let to_alice = h.poster.frames_to("alice-1");
    let to_bob = h.poster.frames_to("bob-1");
    assert_eq!(to_alice.len(), 1);
    assert_eq!(to_bob.len(), 1);
    assert_eq!(to_alice[0]["image_id"], a_thumb.image_id.to_string());
    assert_eq!(to_bob[0]["image_id"], b_thumb.image_id.to_string());
    assert_eq!(seqs(&to_bob), [1], "bob's numbering does not see alice's");
    assert!(h.notices.stored(&owner("bob"))[0].image_id == b_thumb.image_id);
}

#[tokio::test]
async fn a_redelivered_record_keeps_its_numbers_and_stores_nothing_again() {
    // A record that succeeded is redelivered only when its invocation died before answering: the
    // notices keep their numbers (the client drops a seq it has seen) and the log is not grown.
    let h = handler();
    connect(&h, "c1", "alice");
    let (_, thumb, done) = history("alice");
    let event = batch(&[("e3", Some(&thumb), Some(&done))]);
    h.handle(&event, far()).await;
    h.handle(&event, far()).await;
    h.handle(&event, far()).await;
    let frames = h.poster.frames_to("c1");
    assert_eq!(
        types(&frames),
        ["variant_complete", "complete"].repeat(3),
        "sent again, as the same notices"
    );
    assert_eq!(seqs(&frames), [1, 2].repeat(3), "with the same numbers");
    assert_eq!(h.notices.stored(&owner("alice")).len(), 2);
    // The next change is numbered after them (the redeliveries' drawn numbers are gaps).
    let mut retried = done.clone();
    retried.processing_status = safelight::Status::Failed;
    retried.processing_error = Some("x".into());
    h.handle(&batch(&[("e4", Some(&done), Some(&retried))]), far())
        .await;
    let last = *seqs(&h.poster.frames_to("c1")).last().unwrap_or(&0);
    assert!(last > 2, "seq {last} comes after the numbers already sent");
}

#[tokio::test]
async fn a_record_that_succeeded_writes_no_progress() {
    let h = handler();
    connect(&h, "c1", "alice");
    let (_, thumb, done) = history("alice");
    h.handle(&batch(&[("e5", Some(&thumb), Some(&done))]), far())
        .await;
    for kind in [NoticeType::VariantComplete, NoticeType::Complete] {
        let d = h.notices.deliveries()[&delivery_key("e5", kind)].clone();
        assert!(
            !d.done && d.delivered.is_empty(),
            "{kind}: no progress write"
        );
    }
}

#[tokio::test]
async fn a_failed_send_reports_the_record_and_the_retry_reaches_only_the_socket_that_missed_it() {
    let h = handler();
    connect(&h, "ok", "alice");
    connect(&h, "flaky", "alice");
    h.poster.set_failing("flaky", true);
    let (started, thumb, done) = history("alice");
    let event = batch(&[
        ("e1", Some(&started), Some(&thumb)),
        ("e2", Some(&thumb), Some(&done)),
    ]);
    let r = h.handle(&event, far()).await;
    assert_eq!(
        failures(&r),
        ["1000", "1001"],
        "the failed record and everything after it are retried, in order"
    );
    assert_eq!(types(&h.poster.frames_to("ok")), ["thumbnail_complete"]);
    assert_eq!(
        h.notices.stored(&owner("alice")).len(),
        1,
        "stored before sending, so a resume finds it even though a send failed"
    );

    h.poster.set_failing("flaky", false);
    let r = h.handle(&event, far()).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(
        types(&h.poster.frames_to("ok")),
        ["thumbnail_complete", "variant_complete", "complete"],
        "no duplicate for the socket that already had it"
    );
    assert_eq!(
        types(&h.poster.frames_to("flaky")),
        ["thumbnail_complete", "variant_complete", "complete"]
    );
    let to_flaky = seqs(&h.poster.frames_to("flaky"));
    assert_eq!(to_flaky[0], 1, "the retry resends the same numbered notice");
    assert!(
        to_flaky.windows(2).all(|w| w[0] < w[1]),
        "and numbers the later ones after it: {to_flaky:?}"
    );
}

#[tokio::test]
async fn a_gone_connection_is_forgotten_on_the_first_410_without_failing_the_record() {
    let h = handler();
    connect(&h, "live", "alice");
    connect(&h, "stale", "alice");
    h.poster.make_gone("stale");
    let (started, thumb, done) = history("alice");
    let r = h
        .handle(&batch(&[("e1", Some(&started), Some(&thumb))]), far())
        .await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(h.connections.ids(), ["live"]);
    assert_eq!(h.poster.frames_to("live").len(), 1);
    // Later notices do not try it again.
    h.handle(&batch(&[("e2", Some(&thumb), Some(&done))]), far())
        .await;
    assert!(h.poster.frames().iter().all(|(c, _)| c == "live"));
}

#[tokio::test]
async fn an_expired_connection_row_is_not_sent_to() {
    let h = handler();
    let past = Timestamp::now().plus_secs(-10);
    h.connections.insert(Connection {
        connection_id: "old".into(),
        owner: owner("alice"),
        connected_at: past.plus_secs(-7200),
        expires_at: past,
    });
    let (started, thumb, _) = history("alice");
    let r = h
        .handle(&batch(&[("e1", Some(&started), Some(&thumb))]), far())
        .await;
    assert!(r.batch_item_failures.is_empty());
    assert!(h.poster.frames().is_empty());
    assert_eq!(h.notices.stored(&owner("alice")).len(), 1);
}

#[tokio::test]
async fn a_permanent_failure_sends_one_failed_notice_with_a_readable_reason() {
    let h = handler();
    connect(&h, "c1", "alice");
    let (started, _, _) = history("alice");
    let mut failed = started.clone();
    failed
        .fail(
            Stage::Thumbnail,
            ErrorKind::Permanent,
            "the file is not a decodable image",
            Timestamp::now(),
        )
        .unwrap();
    let mut also_variant = failed.clone();
    also_variant
        .fail(
            Stage::Variant,
            ErrorKind::Permanent,
            "corrupt",
            Timestamp::now(),
        )
        .unwrap();
    h.handle(
        &batch(&[
            ("e1", Some(&started), Some(&failed)),
            ("e2", Some(&failed), Some(&also_variant)),
        ]),
        far(),
    )
    .await;
    let frames = h.poster.frames_to("c1");
    assert_eq!(types(&frames), ["failed"]);
    assert_eq!(frames[0]["error"], "the file is not a decodable image");
    assert_eq!(frames[0]["error_kind"], "permanent");
    assert_eq!(frames[0]["retryable"], false);
}

#[tokio::test]
async fn inserts_removals_and_rows_that_are_not_images_send_nothing() {
    let h = handler();
    connect(&h, "c1", "alice");
    let fresh = row("alice");
    let mut event = batch(&[
        ("e1", None, Some(&fresh)),
        ("e2", Some(&fresh), None),
        ("e3", None, Some(&fresh)),
    ]);
    event.records[2].change.new_image =
        serde_dynamo::to_item(json!({"pk": "something else"})).unwrap();
    let r = h.handle(&event, far()).await;
    assert!(r.batch_item_failures.is_empty());
    assert!(h.poster.frames().is_empty());
}

#[tokio::test]
async fn a_log_outage_fails_the_record_before_anything_is_sent() {
    let h = handler();
    connect(&h, "c1", "alice");
    h.log_outage.fail(true);
    let (started, thumb, _) = history("alice");
    let r = h
        .handle(&batch(&[("e1", Some(&started), Some(&thumb))]), far())
        .await;
    assert_eq!(failures(&r), ["1000"]);
    assert!(h.poster.frames().is_empty(), "never sent unless stored");
}

#[tokio::test]
async fn completed_and_failed_images_are_counted_once_per_minute_even_when_redelivered() {
    let load = |name: &str| -> Event {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let h = handler();
    for file in [
        "notify-thumbnail-complete.json",
        "notify-complete.json",
        "notify-complete.json",
        "notify-failed.json",
        "notify-failed.json",
    ] {
        let r = h.handle(&load(file), far()).await;
        assert!(r.batch_item_failures.is_empty(), "{file}");
    }
    let minutes = h.throughput.recent(Timestamp::now(), 2).await.unwrap();
    let processed: u64 = minutes.iter().map(|m| m.processed).sum();
    let failed: u64 = minutes.iter().map(|m| m.failed).sum();
    assert_eq!((processed, failed), (1, 1), "{minutes:?}");
    assert_eq!(
        h.throughput.completed_total().await.unwrap(),
        1,
        "the completed total counts the image once, redelivered or not"
    );
}

#[tokio::test]
async fn the_sample_stream_events_parse_and_produce_their_notices() {
    let load = |name: &str| -> Event {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let cases = [
        ("notify-thumbnail-complete.json", vec!["thumbnail_complete"]),
        ("notify-complete.json", vec!["variant_complete", "complete"]),
        ("notify-failed.json", vec!["failed"]),
        ("notify-insert.json", vec![]),
    ];
    for (file, expected) in cases {
        let h = handler();
        connect(&h, "c1", "demo");
        let r = h.handle(&load(file), far()).await;
        assert!(r.batch_item_failures.is_empty(), "{file}");
        assert_eq!(types(&h.poster.frames_to("c1")), expected, "{file}");
    }
}

#[tokio::test]
async fn a_fan_out_that_runs_out_of_time_stops_between_chunks_and_the_retry_serves_only_the_rest() {
    let h = handler();
    let total = notify::SEND_CHUNK * 2 + 7;
    for i in 0..total {
        connect(&h, &format!("tab-{i:04}"), "alice");
    }
    let (started, thumb, _) = history("alice");
    let event = batch(&[("e1", Some(&started), Some(&thumb))]);
    // A spent budget still serves one chunk per invocation, so the fan-out always advances.
    let spent = Instant::now();
    let mut invocations = 0;
    loop {
        invocations += 1;
        let r = h.handle(&event, spent).await;
        if r.batch_item_failures.is_empty() {
            break;
        }
        assert!(invocations < 10, "no progress");
    }
    assert_eq!(invocations, 3);
    let frames = h.poster.frames();
    assert_eq!(frames.len(), total, "every tab exactly once");
    let distinct: std::collections::BTreeSet<_> = frames.iter().map(|(c, _)| c).collect();
    assert_eq!(distinct.len(), total);
}
