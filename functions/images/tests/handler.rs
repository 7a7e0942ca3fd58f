//! The images handler against in-memory ports, driven by the sample events in `events/`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use images::Images;
use safelight::faults::{Faulty, Switch};
use safelight::testing::{MemoryImages, MemoryQueue, MemoryStore};
use safelight::{
    Derivative, ErrorKind, ImageId, ImageRecord, ObjectKey, Stage, StageResult, Status, Timestamp,
    UploadState,
};
use serde_json::{json, Value};
use testkit::event;

type Handler = Images<MemoryStore, MemoryImages, Faulty<MemoryQueue, Switch>>;

/// The handler and the test's handles on its ports: clones of the fakes it was given.
struct Fixture {
    handler: Arc<Handler>,
    images: MemoryImages,
    queue: MemoryQueue,
    /// Fails every call to the queue while on.
    queue_outage: Switch,
}

fn handler() -> Fixture {
    let images = MemoryImages::default();
    let queue = MemoryQueue::default();
    let queue_outage = Switch::default();
    let handler = Arc::new(Images::new(
        MemoryStore::default(),
        images.clone(),
        Faulty::new(queue.clone(), queue_outage.clone()),
        images::DEFAULT_LINK_WINDOW,
    ));
    Fixture {
        handler,
        images,
        queue,
        queue_outage,
    }
}

/// The handler's router as Lambda runs it: an API Gateway event in, its response out.
trait Handle {
    async fn handle(&self, request: &ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse;
}

impl Handle for Fixture {
    async fn handle(&self, request: &ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        let router = Arc::clone(&self.handler).router();
        safelight::aws::runtime::invoke(router, request.clone()).await
    }
}

/// The sample event for `name`, aimed at image `id` and called by `sub`.
fn request(name: &str, id: Option<ImageId>, sub: &str) -> ApiGatewayV2httpRequest {
    let mut e = event(name);
    if let Some(id) = id {
        let old = e["pathParameters"]["id"].as_str().unwrap().to_owned();
        let path = e["rawPath"]
            .as_str()
            .unwrap()
            .replace(&old, &id.to_string());
        e["rawPath"] = json!(path);
        e["requestContext"]["http"]["path"] = json!(path);
        e["pathParameters"]["id"] = json!(id.to_string());
    }
    e["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(sub);
    serde_json::from_value(e).unwrap()
}

fn body(r: &ApiGatewayV2httpResponse) -> Value {
    match &r.body {
        Some(Body::Text(t)) => serde_json::from_str(t).unwrap(),
        other => panic!("unexpected body {other:?}"),
    }
}

fn row(h: &Fixture, owner: &str, created_ms: i64) -> ImageRecord {
    let r = testkit::image(owner)
        .filename("cat.jpg")
        .created(Timestamp::from_unix_millis(created_ms))
        .build();
    h.images.insert(r.clone());
    r
}

fn failed_row(h: &Fixture, owner: &str) -> ImageRecord {
    let mut r = row(h, owner, 1_000);
    let now = Timestamp::now();
    r.begin(Stage::Thumbnail, now).unwrap();
    let thumb = Derivative {
        key: ObjectKey::thumbnail(r.image_id, "150", "jpg"),
        width: 150,
        height: 100,
        bytes: 900,
        format: "jpeg".into(),
    };
    r.complete(
        Stage::Thumbnail,
        StageResult {
            derivatives: [("150".to_owned(), thumb)].into(),
            ..Default::default()
        },
        now,
    )
    .unwrap();
    r.begin(Stage::Variant, now).unwrap();
    r.fail(
        Stage::Variant,
        ErrorKind::Transient,
        "object storage kept timing out",
        now,
    )
    .unwrap();
    h.images.insert(r.clone());
    r
}

#[tokio::test]
async fn the_owner_sees_the_seven_processing_fields() {
    let h = handler();
    let r = failed_row(&h, "alice");
    let resp = h
        .handle(&request("images-status.json", Some(r.image_id), "alice"))
        .await;
    assert_eq!(resp.status_code, 200);
    let b = body(&resp);
    assert_eq!(b["processing_status"], "failed");
    assert_eq!(b["thumbnail_status"], "completed");
    assert_eq!(b["variant_status"], "failed");
    assert_eq!(b["processing_error"], "object storage kept timing out");
    assert_eq!(b["error_kind"], "transient");
    assert_eq!(b["processing_attempts"], 2);
    assert!(b["processing_started_at"].is_string());
    assert!(b["processing_completed_at"].is_string());
    assert_eq!(b["thumbnails"]["150"]["width"], 150);
}

#[tokio::test]
async fn another_user_gets_404_for_an_image_that_exists() {
    let h = handler();
    let r = row(&h, "alice", 1_000);
    for name in ["images-status.json", "images-get.json", "images-retry.json"] {
        let resp = h.handle(&request(name, Some(r.image_id), "bob")).await;
        assert_eq!(resp.status_code, 404, "{name}");
        let missing = h.handle(&request(name, Some(ImageId::new()), "bob")).await;
        assert_eq!(
            body(&resp),
            body(&missing),
            "{name}: someone else's image must look like a missing one"
        );
    }
    let resp = h.handle(&request("images-get.json", None, "bob")).await;
    assert_eq!(resp.status_code, 404, "a malformed id is simply not found");
}

#[tokio::test]
async fn the_image_view_carries_urls_for_the_original_and_derivatives() {
    let h = handler();
    let r = failed_row(&h, "alice");
    let resp = h
        .handle(&request("images-get.json", Some(r.image_id), "alice"))
        .await;
    assert_eq!(resp.status_code, 200);
    let b = body(&resp);
    assert!(b["original_url"]
        .as_str()
        .unwrap()
        .contains(&format!("originals/alice/{}", r.image_id)));
    assert!(b["thumbnails"]["150"]["url"]
        .as_str()
        .unwrap()
        .contains("thumbnails/"));
    assert!(b.get("version").is_none(), "internal fields stay internal");
}

/// Within one link window every answer carries the same URLs (the browser's cache keys on the
/// whole URL), and the list carries each image's derivative set for `srcset`.
#[tokio::test]
async fn urls_stay_the_same_within_a_link_window_and_the_list_carries_every_derivative() {
    let h = handler();
    let r = failed_row(&h, "alice");
    let get = request("images-get.json", Some(r.image_id), "alice");
    let (a, b) = (body(&h.handle(&get).await), body(&h.handle(&get).await));
    assert_eq!(a["thumbnails"]["150"]["url"], b["thumbnails"]["150"]["url"]);
    assert_eq!(a["original_url"], b["original_url"]);
    let url = a["thumbnails"]["150"]["url"].as_str().unwrap();
    let window = safelight::LinkWindow::containing(Timestamp::now(), images::DEFAULT_LINK_WINDOW);
    assert!(
        url.contains(&format!(
            "X-Amz-Date={}&X-Amz-Expires=7200",
            window.signed_at.unix_millis() / 1000
        )),
        "signed as of the window's start for two windows: {url}"
    );

    let mut e = event("images-list.json");
    e["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!("alice");
    let list = body(&h.handle(&serde_json::from_value(e).unwrap()).await);
    let item = &list["items"][0];
    assert_eq!(
        item["thumbnails"]["150"]["url"],
        a["thumbnails"]["150"]["url"]
    );
    assert_eq!(item["thumbnails"]["150"]["width"], 150);
    assert_eq!(item["thumbnail_url"], a["thumbnails"]["150"]["url"]);
    assert!(item["variants"].as_object().unwrap().is_empty());
}

#[tokio::test]
async fn the_list_shows_only_own_images_newest_first_across_pages() {
    let h = handler();
    let mine: Vec<ImageRecord> = (0..5).map(|i| row(&h, "alice", 1_000 + i)).collect();
    row(&h, "bob", 2_000);
    let mut e = event("images-list.json");
    e["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!("alice");
    e["queryStringParameters"] = json!({"limit": "2"});
    e["rawQueryString"] = json!("limit=2");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        if let Some(c) = &cursor {
            e["queryStringParameters"]["cursor"] = json!(c);
            e["rawQueryString"] = json!(format!("limit=2&cursor={c}"));
        }
        let resp = h.handle(&serde_json::from_value(e.clone()).unwrap()).await;
        assert_eq!(resp.status_code, 200);
        let b = body(&resp);
        seen.extend(
            b["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["image_id"].as_str().unwrap().to_owned()),
        );
        match b["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = mine.iter().rev().map(|r| r.image_id.to_string()).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_bad_page_size_is_refused() {
    let h = handler();
    let mut e = event("images-list.json");
    e["queryStringParameters"] = json!({"limit": "1000"});
    e["rawQueryString"] = json!("limit=1000");
    let resp = h.handle(&serde_json::from_value(e).unwrap()).await;
    assert_eq!(resp.status_code, 400);
    assert_eq!(body(&resp)["error"]["code"], "bad_limit");
}

#[tokio::test]
async fn retrying_a_failed_image_requeues_only_the_failed_stage() {
    let h = handler();
    let r = failed_row(&h, "alice");
    let resp = h
        .handle(&request("images-retry.json", Some(r.image_id), "alice"))
        .await;
    assert_eq!(resp.status_code, 202, "{:?}", resp.body);
    let sent = h.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].stage, Stage::Variant);
    assert_eq!(sent[0].key, r.original_key);
    let stored = h
        .images
        .rows()
        .into_iter()
        .find(|x| x.image_id == r.image_id)
        .unwrap();
    assert_eq!(stored.variant_status, Status::Pending);
    assert_eq!(stored.thumbnail_status, Status::Completed);
    assert_eq!(stored.processing_error, None);
}

#[tokio::test]
async fn retrying_an_image_that_has_not_failed_is_a_conflict() {
    let h = handler();
    let r = row(&h, "alice", 1_000);
    let resp = h
        .handle(&request("images-retry.json", Some(r.image_id), "alice"))
        .await;
    assert_eq!(resp.status_code, 409);
    assert_eq!(body(&resp)["error"]["code"], "not_failed");
    assert!(h.queue.sent().is_empty());
}

#[tokio::test]
async fn a_retry_that_cannot_be_enqueued_leaves_the_image_failed() {
    let h = handler();
    let r = failed_row(&h, "alice");
    h.queue_outage.fail(true);
    let resp = h
        .handle(&request("images-retry.json", Some(r.image_id), "alice"))
        .await;
    assert_eq!(resp.status_code, 503);
    let stored = h
        .images
        .rows()
        .into_iter()
        .find(|x| x.image_id == r.image_id)
        .unwrap();
    assert_eq!(
        stored.processing_status,
        Status::Failed,
        "no job was queued, so the row must stay retryable"
    );
}

#[tokio::test]
async fn retrying_an_upload_taken_for_expired_requeues_both_stages_and_counts_it_stored() {
    let h = handler();
    let mut r = row(&h, "alice", 1_000);
    r.upload_state = UploadState::AwaitingUpload;
    r.expire_upload(Timestamp::from_unix_millis(2_000)).unwrap();
    h.images.insert(r.clone());
    let resp = h
        .handle(&request("images-retry.json", Some(r.image_id), "alice"))
        .await;
    assert_eq!(resp.status_code, 202, "{:?}", resp.body);
    assert_eq!(body(&resp)["requeued"], json!(["thumbnail", "variant"]));
    let stored = h
        .images
        .rows()
        .into_iter()
        .find(|x| x.image_id == r.image_id)
        .unwrap();
    assert_eq!(
        stored.upload_state,
        UploadState::Stored,
        "an original that arrived late is processed and shown"
    );
    assert_eq!(h.queue.sent().len(), 2);
}

#[tokio::test]
async fn a_request_without_identity_is_refused() {
    let h = handler();
    let mut e = event("images-list.json");
    e["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let resp = h.handle(&serde_json::from_value(e).unwrap()).await;
    assert_eq!(resp.status_code, 401);
}
