//! The admin handler against in-memory ports, driven by the sample events in `events/`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use admin::{Admin, AdminPorts};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use safelight::breaker::{Breaker, BreakerConfig};
use safelight::ports::{Outcome, QueueDepth, ThroughputLog};
use safelight::testing::{
    MemoryControl, MemoryDeadLetters, MemoryImages, MemoryQueue, MemoryThroughput,
};
use safelight::{
    ErrorKind, ImageId, ImageRecord, OpsSettings, Stage, StageResult, Status, Timestamp,
    UploadState,
};
use serde_json::{json, Value};
use testkit::event;

type Handler = Admin<MemoryImages, MemoryQueue, MemoryDeadLetters, MemoryControl, MemoryThroughput>;

type Ports =
    AdminPorts<MemoryImages, MemoryQueue, MemoryDeadLetters, MemoryControl, MemoryThroughput>;

/// The handler and the test's handles on its ports: clones of the fakes it was given.
struct Fixture {
    handler: Arc<Handler>,
    ports: Ports,
}

fn handler_with(settings: OpsSettings) -> Fixture {
    let ports = Ports {
        images: MemoryImages::default(),
        queue: MemoryQueue::default(),
        dead_letters: MemoryDeadLetters::default(),
        control: MemoryControl::default(),
        throughput: MemoryThroughput::default(),
    };
    let handler = Arc::new(Admin::new(
        AdminPorts {
            images: ports.images.clone(),
            queue: ports.queue.clone(),
            dead_letters: ports.dead_letters.clone(),
            control: ports.control.clone(),
            throughput: ports.throughput.clone(),
        },
        settings,
    ));
    Fixture { handler, ports }
}

fn handler() -> Fixture {
    handler_with(OpsSettings {
        retry_rate_per_sec: 1000,
        ..OpsSettings::default()
    })
}

/// The handler's router as Lambda runs it: an API Gateway event in, its response out.
trait Handle {
    async fn handle(&self, request: &ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse;
}

impl Handle for Arc<Handler> {
    async fn handle(&self, request: &ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        safelight::aws::runtime::invoke(Arc::clone(self).router(), request.clone()).await
    }
}

impl Handle for Fixture {
    async fn handle(&self, request: &ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        self.handler.handle(request).await
    }
}

fn request(name: &str) -> ApiGatewayV2httpRequest {
    serde_json::from_value(event(name)).unwrap()
}

fn with_body(name: &str, body: &Value) -> ApiGatewayV2httpRequest {
    let mut e = event(name);
    e["body"] = json!(body.to_string());
    serde_json::from_value(e).unwrap()
}

fn body(r: &ApiGatewayV2httpResponse) -> Value {
    match &r.body {
        Some(Body::Text(t)) => serde_json::from_str(t).unwrap(),
        other => panic!("unexpected body {other:?}"),
    }
}

fn row(h: &Fixture, owner: &str) -> ImageRecord {
    let r = testkit::image(owner).age_secs(600).build();
    h.ports.images.insert(r.clone());
    r
}

/// A row whose thumbnail stage gave up after its receives (its message then sits in the DLQ).
fn failed(h: &Fixture, owner: &str) -> ImageRecord {
    let mut r = row(h, owner);
    let t = Timestamp::now().plus_secs(-60);
    r.begin(Stage::Thumbnail, t).unwrap();
    r.begin(Stage::Variant, t).unwrap();
    r.complete(Stage::Variant, StageResult::default(), t)
        .unwrap();
    r.fail(
        Stage::Thumbnail,
        ErrorKind::Transient,
        "gave up after 3 attempts: injected fault in s3_get",
        t,
    )
    .unwrap();
    h.ports.images.insert(r.clone());
    r
}

fn completed(h: &Fixture, owner: &str) -> ImageRecord {
    let mut r = row(h, owner);
    let t = Timestamp::now().plus_secs(-60);
    for s in Stage::ALL {
        r.begin(s, t).unwrap();
        r.complete(s, StageResult::default(), t).unwrap();
    }
    h.ports.images.insert(r.clone());
    r
}

fn dead_letter_for(h: &Fixture, r: &ImageRecord, stage: Stage) {
    let body = json!({"version": "0", "detail-type": "Object Created", "source": "aws.s3",
        "detail": {"bucket": {"name": "b"}, "object": {"key": r.original_key.as_str(), "size": 1}}});
    h.ports.dead_letters.push(stage, &body.to_string());
}

/// A dead letter of the "Object Created" event of one version of `r`'s original.
fn dead_letter_of_version(h: &Fixture, r: &ImageRecord, stage: Stage, version: &str) {
    let body = json!({"version": "0", "detail-type": "Object Created", "source": "aws.s3",
        "detail": {"bucket": {"name": "b"}, "object": {"key": r.original_key.as_str(), "size": 1,
            "version-id": version}}});
    h.ports.dead_letters.push(stage, &body.to_string());
}

fn status_of(h: &Fixture, id: ImageId) -> ImageRecord {
    h.ports
        .images
        .rows()
        .into_iter()
        .find(|r| r.image_id == id)
        .unwrap()
}

// ------------------------------------------------------------------------------ access

#[tokio::test(start_paused = true)]
async fn a_caller_without_the_admin_scope_gets_403_on_every_admin_route_whatever_its_groups() {
    let h = handler();
    let f = failed(&h, "u1");
    dead_letter_for(&h, &f, Stage::Thumbnail);
    // What API Gateway would hand over for tokens that must not pass: admin-looking groups
    // without the scope, or a scope that only resembles it.
    let refused: [&[(&str, &str)]; 7] = [
        &[("groups", "[admin]")],
        &[
            ("groups", "[Site admin]"),
            ("cognito:groups", "[Site admin]"),
        ],
        &[("groups", "x,admin")],
        &[("cognito:groups", "[admin]"), ("scope", "openid")],
        &[("scope", "x,safelight/admin")],
        &[("scope", "safelight/admins")],
        &[("scp", "[safelight/administrator]")],
    ];
    for name in [
        "admin-processing-queue.json",
        "admin-retry-all-failed.json",
        "admin-retry-all-failed-dry-run.json",
        "admin-circuit-reset.json",
    ] {
        for claims in refused {
            let mut e = event(name);
            let c = &mut e["requestContext"]["authorizer"]["jwt"]["claims"];
            c.as_object_mut().unwrap().remove("scope");
            for (k, v) in claims {
                c[*k] = json!(v);
            }
            let r = h.handle(&serde_json::from_value(e).unwrap()).await;
            assert_eq!(r.status_code, 403, "{name} {claims:?}");
            assert_eq!(body(&r)["error"]["code"], "forbidden", "{name}");
            assert!(
                body(&r)["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("safelight/admin"),
                "the refusal names the scope"
            );
        }
    }
    assert!(
        h.ports.queue.sent().is_empty(),
        "a refused call did nothing"
    );
    assert_eq!(h.ports.dead_letters.bodies(Stage::Thumbnail).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_admin_scope_the_deployment_names_is_the_one_that_grants() {
    let h = handler_with(OpsSettings {
        admin_scope: "ops/admin".into(),
        ..OpsSettings::default()
    });
    let r = h.handle(&request("admin-processing-queue.json")).await;
    assert_eq!(r.status_code, 403, "safelight/admin is not the named scope");
    let mut e = event("admin-processing-queue.json");
    e["requestContext"]["authorizer"]["jwt"]["claims"]["scope"] = json!("openid ops/admin");
    let r = h.handle(&serde_json::from_value(e).unwrap()).await;
    assert_eq!(r.status_code, 200);
}

/// The log lines written on this thread while `f` runs, as JSON (the Lambda JSON log format).
///
/// One global subscriber, installed once, writes each line into the buffer of the thread that
/// logged it (if that thread is capturing): a per-test `set_default` subscriber races with the
/// other tests' threads over tracing's global callsite interest and level hint, and lost this
/// test's lines about one run in a few when the suite ran in parallel.
async fn logged<F: std::future::Future>(f: F) -> (F::Output, Vec<Value>) {
    use std::cell::RefCell;
    type Buffer = Arc<std::sync::Mutex<Vec<u8>>>;
    thread_local! {
        static CAPTURE: RefCell<Option<Buffer>> = const { RefCell::new(None) };
    }
    struct ThisThread;
    impl std::io::Write for ThisThread {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            CAPTURE.with(|c| {
                if let Some(buf) = c.borrow().as_ref() {
                    buf.lock().unwrap().extend_from_slice(b);
                }
            });
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static GLOBAL: std::sync::Once = std::sync::Once::new();
    GLOBAL.call_once(|| {
        let sub = lambda_runtime::tracing::subscriber::fmt()
            .json()
            .with_max_level(lambda_runtime::tracing::Level::INFO)
            .with_writer(|| ThisThread)
            .finish();
        lambda_runtime::tracing::subscriber::util::SubscriberInitExt::init(sub);
    });
    let buf = Buffer::default();
    CAPTURE.with(|c| *c.borrow_mut() = Some(buf.clone()));
    // The tests run on a current-thread runtime: the handler logs on this thread.
    let out = f.await;
    CAPTURE.with(|c| *c.borrow_mut() = None);
    let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out, lines)
}

fn audit_lines(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| l["fields"]["message"] == "admin action")
        .collect()
}

#[tokio::test(start_paused = true)]
async fn retry_all_and_a_breaker_reset_each_log_an_audit_line_naming_the_caller_never_the_token() {
    let h = handler();
    let f = failed(&h, "u1");
    dead_letter_for(&h, &f, Stage::Thumbnail);
    let (r, lines) = logged(h.handle(&request("admin-retry-all-failed.json"))).await;
    assert_eq!(r.status_code, 200);
    let audit = audit_lines(&lines);
    assert_eq!(audit.len(), 1, "{lines:?}");
    let a = &audit[0]["fields"];
    assert_eq!(a["action"], "retry_all_failed");
    assert_eq!(a["caller"], "ops-admin");
    assert_eq!(a["dry_run"], false);
    assert_eq!(a["messages_redriven"], 1);
    assert_eq!(audit[0]["level"], "INFO");

    let (r, lines) = logged(h.handle(&request("admin-circuit-reset.json"))).await;
    assert_eq!(r.status_code, 200);
    let audit = audit_lines(&lines);
    assert_eq!(audit.len(), 1, "{lines:?}");
    let a = &audit[0]["fields"];
    assert_eq!(a["action"], "circuit_reset");
    assert_eq!(a["caller"], "ops-admin");
    assert_eq!(a["stage"], "thumbnail");

    // A refusal names the caller too, and no line ever holds the bearer token.
    let mut e = event("admin-circuit-reset.json");
    e["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!("intruder");
    e["requestContext"]["authorizer"]["jwt"]["claims"]["scope"] = json!("openid");
    let (r, refused) = logged(h.handle(&serde_json::from_value(e).unwrap())).await;
    assert_eq!(r.status_code, 403);
    assert!(audit_lines(&refused).is_empty());
    assert!(
        refused.iter().any(|l| l["fields"]["caller"] == "intruder"),
        "{refused:?}"
    );
    let token = event("admin-circuit-reset.json")["headers"]["authorization"]
        .as_str()
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_owned();
    for l in lines.iter().chain(&refused) {
        assert!(!l.to_string().contains(&token), "a token was logged: {l}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_without_verified_claims_gets_401() {
    let h = handler();
    let mut e = event("admin-processing-queue.json");
    e["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let r = h.handle(&serde_json::from_value(e).unwrap()).await;
    assert_eq!(r.status_code, 401);
    assert_eq!(body(&r)["error"]["code"], "unauthorized");
}

// ------------------------------------------------------------------------------ the view

#[tokio::test(start_paused = true)]
async fn the_queue_view_counts_rows_by_status_and_shows_queues_breakers_failures_and_throughput() {
    let h = handler();
    for _ in 0..3 {
        completed(&h, "u1");
    }
    let f1 = failed(&h, "u1");
    let f2 = failed(&h, "u2");
    let waiting = row(&h, "u3");
    let mut awaiting = row(&h, "u3");
    awaiting.upload_state = UploadState::AwaitingUpload;
    awaiting.updated_at = Timestamp::now().plus_secs(-3600);
    h.ports.images.insert(awaiting);
    dead_letter_for(&h, &f1, Stage::Thumbnail);
    h.ports.dead_letters.queue_depths.lock().unwrap().insert(
        Stage::Variant,
        QueueDepth {
            visible: 4,
            in_flight: 2,
            delayed: 1,
        },
    );
    let now = Timestamp::now();
    h.ports
        .throughput
        .count(now, Outcome::Processed)
        .await
        .unwrap();
    h.ports
        .throughput
        .count(now, Outcome::Processed)
        .await
        .unwrap();
    h.ports
        .throughput
        .count(now, Outcome::Failed)
        .await
        .unwrap();

    let r = h.handle(&request("admin-processing-queue.json")).await;
    assert_eq!(r.status_code, 200);
    let v = body(&r);
    // Completed: the counter (the two completions notify counted; three completed rows exist,
    // but completed rows are not in the status index). The others: the index's shards.
    assert_eq!(
        v["counts"],
        json!({"pending": 2, "processing": 0, "completed": 2, "failed": 2})
    );
    assert_eq!(v["queues"][0]["stage"], "thumbnail");
    assert_eq!(v["queues"][0]["dlq"]["visible"], 1);
    assert_eq!(v["queues"][1]["stage"], "variant");
    assert_eq!(
        (
            &v["queues"][1]["visible"],
            &v["queues"][1]["in_flight"],
            &v["queues"][1]["delayed"]
        ),
        (&json!(4), &json!(2), &json!(1))
    );
    assert_eq!(v["circuits"][0]["state"], "closed");
    assert_eq!(v["circuits"][0]["next_probe_in_secs"], Value::Null);
    // The oldest image waiting for processing, not the older row still waiting for its upload.
    assert_eq!(
        v["oldest_pending"]["image_id"],
        waiting.image_id.to_string()
    );
    assert!(v["oldest_pending"]["age_secs"].as_u64().unwrap() >= 599);
    let failures = v["recent_failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2);
    let ids: Vec<&str> = failures
        .iter()
        .map(|f| f["image_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&f1.image_id.to_string().as_str()));
    assert!(ids.contains(&f2.image_id.to_string().as_str()));
    let f = failures.iter().find(|f| f["owner_id"] == "u2").unwrap();
    assert_eq!(f["stage"], "thumbnail");
    assert_eq!(f["error_kind"], "transient");
    assert!(f["error"].as_str().unwrap().contains("gave up"));
    let chart = v["throughput"].as_array().unwrap();
    assert_eq!(chart.len(), 60);
    assert_eq!(chart[59]["processed"], 2);
    assert_eq!(chart[59]["failed"], 1);
    assert_eq!(chart[0]["processed"], 0);
}

#[tokio::test(start_paused = true)]
async fn a_forced_open_breaker_shows_as_open_and_the_reset_closes_it_recording_who() {
    let h = handler();
    let cfg = BreakerConfig::default();
    let mut b = Breaker::default();
    let now = Timestamp::now();
    for _ in 0..5 {
        b.record_failure(now, 1, &cfg);
    }
    h.ports.control.set_breaker(Stage::Thumbnail, b);

    let v = body(&h.handle(&request("admin-processing-queue.json")).await);
    let c = &v["circuits"][0];
    assert_eq!(
        (&c["stage"], &c["state"]),
        (&json!("thumbnail"), &json!("open"))
    );
    assert_eq!(c["failures_in_window"], 5);
    assert!(
        (55..=60).contains(&c["next_probe_in_secs"].as_u64().unwrap()),
        "{c}"
    );
    assert!(c["opened_at"].is_string());
    assert_eq!(v["circuits"][1]["state"], "closed");

    let r = h.handle(&request("admin-circuit-reset.json")).await;
    assert_eq!(r.status_code, 200);
    let done = body(&r);
    assert_eq!(done["state"], "closed");
    assert_eq!(done["previous_state"], "open");
    assert_eq!(done["reset_by"], "ops-admin");
    let stored = h.ports.control.breaker(Stage::Thumbnail);
    assert_eq!(stored.reset_by.as_deref(), Some("ops-admin"));
    assert!(stored.failures.is_empty());

    let v = body(&h.handle(&request("admin-processing-queue.json")).await);
    assert_eq!(v["circuits"][0]["state"], "closed");
    assert_eq!(v["circuits"][0]["reset_by"], "ops-admin");
    assert_eq!(v["circuits"][0]["times_opened"], 1);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_stage_is_404_and_a_bad_body_or_cursor_is_400() {
    let h = handler();
    let mut e = event("admin-circuit-reset.json");
    e["rawPath"] = json!("/api/admin/circuits/everything/reset");
    e["requestContext"]["http"]["path"] = json!("/api/admin/circuits/everything/reset");
    e["pathParameters"]["stage"] = json!("everything");
    let r = h.handle(&serde_json::from_value(e).unwrap()).await;
    assert_eq!(r.status_code, 404);

    let r = h
        .handle(&with_body(
            "admin-retry-all-failed.json",
            &json!({"dry": true}),
        ))
        .await;
    assert_eq!(r.status_code, 400);
    assert_eq!(body(&r)["error"]["code"], "bad_json");
    // A JSON array is not the request object (serde would read it as all defaults: a real run).
    for not_an_object in [json!([]), json!([true]), json!("dry_run"), json!(null)] {
        let r = h
            .handle(&with_body("admin-retry-all-failed.json", &not_an_object))
            .await;
        assert_eq!(r.status_code, 400, "{not_an_object}");
        assert_eq!(body(&r)["error"]["code"], "bad_json", "{not_an_object}");
    }
    let r = h
        .handle(&with_body(
            "admin-retry-all-failed.json",
            &json!({"cursor": "forged"}),
        ))
        .await;
    assert_eq!(r.status_code, 400);
    assert_eq!(body(&r)["error"]["code"], "bad_cursor");
}

// ------------------------------------------------------------------------------ retry all

#[tokio::test(start_paused = true)]
async fn a_dry_run_reports_failed_images_and_dead_letters_and_changes_nothing() {
    let h = handler();
    let f1 = failed(&h, "u1");
    let f2 = failed(&h, "u2");
    completed(&h, "u1");
    dead_letter_for(&h, &f1, Stage::Thumbnail);
    let before = h.ports.images.rows();

    let r = h
        .handle(&request("admin-retry-all-failed-dry-run.json"))
        .await;
    assert_eq!(r.status_code, 200);
    let v = body(&r);
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["images_requeued"], 2);
    assert_eq!(v["messages_redriven"], 1);
    assert_eq!(v["done"], true);
    let mut after = h.ports.images.rows();
    let mut before = before;
    before.sort_by_key(|r| r.image_id);
    after.sort_by_key(|r| r.image_id);
    assert_eq!(after, before);
    assert!(h.ports.queue.sent().is_empty());
    assert!(h.ports.queue.requeued().is_empty());
    assert_eq!(h.ports.dead_letters.bodies(Stage::Thumbnail).len(), 1);
    assert_eq!(status_of(&h, f2.image_id).processing_status, Status::Failed);
}

/// Found by the simulator (seed 303): the first letter of a failed image resets it, and the
/// letters of a later write to its key were then taken for duplicates of the reset image and
/// deleted, so no processor deleted that version and the pinned original became non-current
/// (the bucket's lifecycle expires non-current versions).
#[tokio::test(start_paused = true)]
async fn retry_all_redrives_every_letter_of_a_later_write_whatever_the_images_state() {
    let h = handler();
    let mut r = failed(&h, "u1");
    r.original_version = Some("v1".into());
    h.ports.images.insert(r.clone());
    dead_letter_of_version(&h, &r, Stage::Thumbnail, "v1");
    dead_letter_of_version(&h, &r, Stage::Thumbnail, "v2");
    dead_letter_of_version(&h, &r, Stage::Variant, "v2");

    let v = body(&h.handle(&request("admin-retry-all-failed.json")).await);
    assert_eq!(v["images_requeued"], 1, "{v}");
    assert_eq!(
        v["messages_redriven"], 3,
        "the image's own letter and both stages' later-write letters: {v}"
    );
    assert_eq!(v["duplicates_removed"], 0, "{v}");
    let redriven: Vec<(Stage, bool)> = h
        .ports
        .queue
        .requeued()
        .iter()
        .map(|(stage, body, _)| (*stage, body.contains("\"version-id\":\"v2\"")))
        .collect();
    assert_eq!(
        redriven,
        vec![(Stage::Thumbnail, true), (Stage::Variant, true)],
        "the processors see the later write and delete that version"
    );
    assert_eq!(status_of(&h, r.image_id).thumbnail_status, Status::Pending);
}

#[tokio::test(start_paused = true)]
async fn retry_all_failed_brings_dead_letters_back_and_requeues_failed_rows_without_one() {
    let h = handler();
    let with_letter = failed(&h, "u1");
    let without_letter = failed(&h, "u2");
    let done = completed(&h, "u1");
    dead_letter_for(&h, &with_letter, Stage::Thumbnail);
    // A stale dead letter of an image that completed since: removed, not re-sent.
    dead_letter_for(&h, &done, Stage::Variant);

    let r = h.handle(&request("admin-retry-all-failed.json")).await;
    assert_eq!(r.status_code, 200);
    let v = body(&r);
    assert_eq!(v["images_requeued"], 2, "{v}");
    assert_eq!(v["messages_redriven"], 1, "{v}");
    assert_eq!(v["duplicates_removed"], 1, "{v}");
    assert_eq!(v["skipped"], 0, "{v}");
    assert_eq!(v["done"], true);
    assert_eq!(v["next_cursor"], Value::Null);

    let sent = h.ports.queue.sent();
    assert_eq!(sent.len(), 2, "one message per failed stage: {sent:?}");
    assert!(sent.iter().all(|m| m.stage == Stage::Thumbnail));
    for r in [&with_letter, &without_letter] {
        let now = status_of(&h, r.image_id);
        assert_eq!(now.thumbnail_status, Status::Pending);
        assert_eq!(
            now.variant_status,
            Status::Completed,
            "completed work is kept"
        );
        assert_eq!(now.processing_error, None);
    }
    assert!(h.ports.dead_letters.bodies(Stage::Thumbnail).is_empty());
    assert!(h.ports.dead_letters.bodies(Stage::Variant).is_empty());

    // Nothing is failed any more: a second run finds nothing to do.
    let v = body(&h.handle(&request("admin-retry-all-failed.json")).await);
    assert_eq!(
        (
            v["images_requeued"].as_u64(),
            v["messages_redriven"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(h.ports.queue.sent().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_image_failed_in_both_stages_is_requeued_once_for_both_and_its_second_letter_dropped() {
    let h = handler();
    let mut r = row(&h, "u1");
    let t = Timestamp::now().plus_secs(-60);
    for s in Stage::ALL {
        r.begin(s, t).unwrap();
        r.fail(s, ErrorKind::Transient, "gave up", t).unwrap();
    }
    h.ports.images.insert(r.clone());
    dead_letter_for(&h, &r, Stage::Thumbnail);
    dead_letter_for(&h, &r, Stage::Variant);

    let v = body(&h.handle(&request("admin-retry-all-failed.json")).await);
    assert_eq!(v["images_requeued"], 1, "{v}");
    assert_eq!(v["messages_redriven"], 1, "{v}");
    assert_eq!(v["duplicates_removed"], 1, "{v}");
    let stages: Vec<Stage> = h.ports.queue.sent().iter().map(|m| m.stage).collect();
    assert_eq!(stages, vec![Stage::Thumbnail, Stage::Variant]);
}

#[tokio::test(start_paused = true)]
async fn two_concurrent_runs_enqueue_each_failed_image_exactly_once() {
    let h = handler();
    let mut images = Vec::new();
    for i in 0..40 {
        let f = failed(&h, &format!("u{}", i % 3));
        if i % 2 == 0 {
            dead_letter_for(&h, &f, Stage::Thumbnail);
        }
        images.push(f.image_id);
    }
    let run = |h: Arc<Handler>| async move {
        let mut totals = (0, 0);
        let mut cursor = Value::Null;
        loop {
            let ask = if cursor.is_null() {
                json!({})
            } else {
                json!({"cursor": cursor})
            };
            let v = body(
                &h.handle(&with_body("admin-retry-all-failed.json", &ask))
                    .await,
            );
            totals.0 += v["images_requeued"].as_u64().unwrap();
            totals.1 += v["messages_redriven"].as_u64().unwrap();
            if v["done"] == true {
                return totals;
            }
            cursor = v["next_cursor"].clone();
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(run(h.handler.clone())),
        tokio::spawn(run(h.handler.clone()))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.0 + b.0, 40, "images re-enqueued: {a:?} + {b:?}");
    let sent = h.ports.queue.sent();
    let mut ids: Vec<ImageId> = sent.iter().map(|m| m.image_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(sent.len(), 40, "each image enqueued once");
    assert_eq!(ids.len(), 40);
    assert!(h.ports.dead_letters.bodies(Stage::Thumbnail).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_run_longer_than_one_call_continues_through_its_cursor_at_the_bounded_rate() {
    let h = handler_with(OpsSettings {
        retry_rate_per_sec: 4,
        retry_call_budget: Duration::from_secs(5),
        ..OpsSettings::default()
    });
    for i in 0..10 {
        failed(&h, &format!("u{i}"));
    }
    let first = body(&h.handle(&request("admin-retry-all-failed.json")).await);
    assert_eq!(first["done"], false, "{first}");
    assert!(first["next_cursor"].is_string());
    let first_count = first["images_requeued"].as_u64().unwrap();
    // Two empty long polls of the DLQs (2 s each), then the second left at 4 per second: the
    // first image at once, then one every 250 ms.
    assert!((1..=5).contains(&first_count), "{first}");
    let mut total = first_count;
    let mut cursor = first["next_cursor"].clone();
    let mut calls = 1;
    while !cursor.is_null() {
        let v = body(
            &h.handle(&with_body(
                "admin-retry-all-failed.json",
                &json!({"cursor": cursor}),
            ))
            .await,
        );
        total += v["images_requeued"].as_u64().unwrap();
        cursor = v["next_cursor"].clone();
        calls += 1;
        assert!(calls < 20, "the run does not end: {v}");
    }
    assert_eq!(total, 10);
    assert_eq!(h.ports.queue.sent().len(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_row_that_fails_again_during_the_run_is_left_for_the_next_run() {
    let h = handler();
    let f = failed(&h, "u1");
    // Its failure is newer than the run's start, as if it failed again after being re-queued.
    let mut again = f.clone();
    let later = Timestamp::now().plus_secs(3600);
    again.updated_at = later;
    again.status_since = Some(later);
    h.ports.images.insert(again);
    dead_letter_for(&h, &f, Stage::Thumbnail);
    let v = body(&h.handle(&request("admin-retry-all-failed.json")).await);
    assert_eq!(v["images_requeued"], 0, "{v}");
    assert_eq!(v["skipped"], 1, "{v}");
    assert_eq!(v["done"], true);
    assert_eq!(
        h.ports.dead_letters.bodies(Stage::Thumbnail).len(),
        1,
        "left in the DLQ"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_all_reads_the_dlqs_with_long_polls_so_a_short_poll_sampling_empty_misses_nothing() {
    let h = handler();
    *h.ports.dead_letters.short_polls_miss.lock().unwrap() = true;
    let f = failed(&h, "u1");
    dead_letter_for(&h, &f, Stage::Thumbnail);
    let v = body(&h.handle(&request("admin-retry-all-failed.json")).await);
    assert_eq!(v["messages_redriven"], 1, "{v}");
    assert_eq!(v["done"], true, "{v}");
    assert!(h.ports.dead_letters.bodies(Stage::Thumbnail).is_empty());
}

#[tokio::test(start_paused = true)]
async fn retry_all_is_not_done_while_a_sweep_holds_dead_letters_and_brings_them_back_after() {
    let h = handler();
    let f = failed(&h, "u1");
    dead_letter_for(&h, &f, Stage::Thumbnail);
    // The sweeper has received it and keeps it hidden until its sweep ends.
    h.ports
        .dead_letters
        .hide_all(Stage::Thumbnail, Duration::from_secs(30));

    let first = body(&h.handle(&request("admin-retry-all-failed.json")).await);
    assert_eq!(
        first["done"], false,
        "a letter is still in the DLQ: {first}"
    );
    assert_eq!(first["images_requeued"], 0, "{first}");
    assert!(first["next_cursor"].is_string(), "{first}");

    let mut cursor = first["next_cursor"].clone();
    let mut requeued = 0;
    for _ in 0..5 {
        let v = body(
            &h.handle(&with_body(
                "admin-retry-all-failed.json",
                &json!({"cursor": cursor}),
            ))
            .await,
        );
        requeued += v["images_requeued"].as_u64().unwrap();
        if v["done"] == true {
            break;
        }
        cursor = v["next_cursor"].clone();
    }
    assert_eq!(requeued, 1);
    assert!(h.ports.dead_letters.bodies(Stage::Thumbnail).is_empty());
    assert_eq!(status_of(&h, f.image_id).thumbnail_status, Status::Pending);
}
