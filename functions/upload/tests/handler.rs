//! The upload handler against in-memory ports, driven by the sample events in `events/`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use safelight::faults::{Faulty, Switch};
use safelight::limits::OwnerLimits;
use safelight::testing::{MemoryDigests, MemoryImages, MemoryRates, MemoryStore};
use safelight::{ContentType, Status, UploadState};
use serde_json::{json, Value};
use testkit::event;
use upload::{Limits, Upload};

/// The upload handler over the fakes; its store fails while the store's switch is on.
type Handler =
    Upload<Faulty<MemoryStore, Switch>, MemoryImages, MemoryDigests, Faulty<MemoryRates, Switch>>;

/// The handler and the test's handles on its ports: clones of the fakes it was given.
struct Fixture {
    handler: Arc<Handler>,
    store: MemoryStore,
    /// Fails every call to the object store while on.
    store_outage: Switch,
    images: MemoryImages,
    rates: MemoryRates,
    /// Fails every call to the request counters while on.
    rates_outage: Switch,
}

fn handler() -> Fixture {
    handler_with(OwnerLimits::default())
}

fn handler_with(owner: OwnerLimits) -> Fixture {
    let store = MemoryStore::default();
    let store_outage = Switch::default();
    let images = MemoryImages::default();
    let rates = MemoryRates::default();
    let rates_outage = Switch::default();
    let handler = Arc::new(Upload::new(
        Faulty::new(store.clone(), store_outage.clone()),
        images.clone(),
        MemoryDigests::default(),
        Faulty::new(rates.clone(), rates_outage.clone()),
        Limits {
            max_upload_bytes: 25 * 1024 * 1024,
            presign_expires: Duration::from_secs(900),
            owner,
        },
    ));
    Fixture {
        handler,
        store,
        store_outage,
        images,
        rates,
        rates_outage,
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

fn request(v: Value) -> ApiGatewayV2httpRequest {
    serde_json::from_value(v).unwrap()
}

fn presign_request(body: Value) -> ApiGatewayV2httpRequest {
    let mut e = event("upload-presign.json");
    e["body"] = json!(body.to_string());
    request(e)
}

fn direct_request(content_type: &str, bytes: &[u8]) -> ApiGatewayV2httpRequest {
    let mut e = event("upload-direct.json");
    e["headers"]["content-type"] = json!(content_type);
    e["body"] = json!(B64.encode(bytes));
    request(e)
}

fn body(r: &ApiGatewayV2httpResponse) -> Value {
    match &r.body {
        Some(Body::Text(t)) => serde_json::from_str(t).unwrap(),
        other => panic!("unexpected body {other:?}"),
    }
}

fn assert_refused(h: &Fixture, r: &ApiGatewayV2httpResponse, status: i64, code: &str) {
    assert_eq!(r.status_code, status, "{:?}", r.body);
    assert_eq!(body(r)["error"]["code"], code);
    assert!(body(r)["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(h.images_rows().is_empty(), "a refused request left a row");
    assert!(
        h.store_keys().is_empty(),
        "a refused request left an object"
    );
}

trait Inspect {
    fn images_rows(&self) -> Vec<safelight::ImageRecord>;
    fn store_keys(&self) -> Vec<String>;
}

impl Inspect for Fixture {
    fn images_rows(&self) -> Vec<safelight::ImageRecord> {
        self.images.rows()
    }
    fn store_keys(&self) -> Vec<String> {
        self.store.keys()
    }
}

fn tiny_png() -> Vec<u8> {
    let e = event("upload-direct.json");
    B64.decode(e["body"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_json_request_gets_a_presigned_put_and_post_and_a_pending_row() {
    let h = handler();
    let r = h.handle(&request(event("upload-presign.json"))).await;
    assert_eq!(r.status_code, 201, "{:?}", r.body);
    let b = body(&r);
    let id = b["image_id"].as_str().unwrap();
    assert_eq!(
        b["status_url"],
        format!("/api/images/{id}/processing-status")
    );
    assert_eq!(b["upload"]["method"], "PUT");
    assert_eq!(b["upload"]["headers"]["content-type"], "image/jpeg");
    assert_eq!(b["upload"]["headers"]["content-length"], "2483201");
    // The declared hex digest is handed to S3 as base64, so S3 verifies the body.
    let sum = B64.encode(
        hex::decode("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08").unwrap(),
    );
    assert_eq!(b["upload"]["headers"]["x-amz-checksum-sha256"], sum);
    assert_eq!(b["upload_post"]["method"], "POST");
    assert_eq!(
        b["upload_post"]["fields"]["key"],
        format!("originals/demo-user/{id}")
    );

    let rows = h.images_rows();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.image_id.to_string(), id);
    assert_eq!(row.owner_id.as_str(), "demo-user");
    assert_eq!(row.upload_state, UploadState::AwaitingUpload);
    assert_eq!(row.processing_status, Status::Pending);
    assert_eq!(row.thumbnail_status, Status::Pending);
    assert_eq!(row.variant_status, Status::Pending);
    assert_eq!(row.processing_attempts, 0);
    assert_eq!(row.filename.as_deref(), Some("holiday.jpg"));
    assert!(
        h.store_keys().is_empty(),
        "the presigned path stores nothing itself"
    );
}

#[tokio::test]
async fn a_small_image_body_is_stored_under_a_server_made_key_with_a_row() {
    let h = handler();
    let r = h.handle(&request(event("upload-direct.json"))).await;
    assert_eq!(r.status_code, 202, "{:?}", r.body);
    let id = body(&r)["image_id"].as_str().unwrap().to_owned();
    assert_eq!(body(&r)["status"], "pending");
    let key = format!("originals/demo-user/{id}");
    let (bytes, ct) = h.store.object(&key).expect("original stored");
    assert_eq!(bytes, tiny_png());
    assert_eq!(ct, "image/png");
    let row = &h.images_rows()[0];
    assert_eq!(row.upload_state, UploadState::Stored);
    assert_eq!(row.content_type, ContentType::Png);
    assert_eq!(row.byte_size, bytes.len() as u64);
    assert_eq!(row.sha256.as_deref().map(str::len), Some(64));
}

#[tokio::test]
async fn an_unsupported_type_is_refused_on_both_paths() {
    let h = handler();
    let r = h
        .handle(&presign_request(
            json!({"filename": "a.svg", "content_type": "image/svg+xml", "size": 10}),
        ))
        .await;
    assert_refused(&h, &r, 415, "unsupported_type");
    let r = h.handle(&direct_request("image/tiff", b"II*\0....")).await;
    assert_refused(&h, &r, 415, "unsupported_type");
    let r = h.handle(&direct_request("text/plain", b"hello")).await;
    assert_refused(&h, &r, 415, "unsupported_type");
}

#[tokio::test]
async fn a_declared_size_over_the_limit_or_zero_is_refused() {
    let h = handler();
    let r = h
        .handle(&presign_request(json!({"filename": "a.jpg", "content_type": "image/jpeg", "size": 25 * 1024 * 1024 + 1})))
        .await;
    assert_refused(&h, &r, 413, "too_large");
    let r = h
        .handle(&presign_request(
            json!({"filename": "a.jpg", "content_type": "image/jpeg", "size": 0}),
        ))
        .await;
    assert_refused(&h, &r, 400, "empty_file");
}

#[tokio::test]
async fn an_empty_body_is_refused_on_both_paths() {
    let h = handler();
    let mut e = event("upload-presign.json");
    e.as_object_mut().unwrap().remove("body");
    let r = h.handle(&request(e)).await;
    assert_refused(&h, &r, 400, "empty_body");
    let r = h.handle(&direct_request("image/png", b"")).await;
    assert_refused(&h, &r, 400, "empty_body");
}

#[tokio::test]
async fn bytes_that_are_not_the_declared_type_are_refused() {
    let h = handler();
    let r = h.handle(&direct_request("image/jpeg", &tiny_png())).await;
    assert_refused(&h, &r, 400, "type_mismatch");
    assert!(body(&r)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("image/png"));
    let r = h
        .handle(&direct_request("image/png", b"<html>not an image</html>"))
        .await;
    assert_refused(&h, &r, 400, "type_mismatch");
}

#[tokio::test]
async fn a_direct_body_over_the_fast_path_limit_is_refused() {
    let h = handler();
    let mut big = tiny_png();
    big.resize(safelight::config::MAX_DIRECT_UPLOAD_BYTES as usize + 1, 0);
    let r = h.handle(&direct_request("image/png", &big)).await;
    assert_refused(&h, &r, 413, "too_large");
}

#[tokio::test]
async fn a_request_without_verified_identity_is_refused() {
    let h = handler();
    let mut e = event("upload-direct.json");
    e["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let r = h.handle(&request(e)).await;
    assert_refused(&h, &r, 401, "unauthorized");
    let mut e = event("upload-presign.json");
    e["requestContext"]["authorizer"]["jwt"]["claims"]
        .as_object_mut()
        .unwrap()
        .remove("sub");
    let r = h.handle(&request(e)).await;
    assert_refused(&h, &r, 401, "unauthorized");
}

#[tokio::test]
async fn malformed_json_requests_are_refused_with_the_reason() {
    let h = handler();
    let cases = [
        (
            json!({"content_type": "image/jpeg", "size": 10}),
            "bad_json",
        ),
        (
            json!({"filename": "a.jpg", "content_type": "image/jpeg", "size": -1}),
            "bad_json",
        ),
        (
            json!({"filename": "a.jpg", "content_type": "image/jpeg", "size": 10, "key": "originals/x"}),
            "bad_json",
        ),
        (
            json!({"filename": "../", "content_type": "image/jpeg", "size": 10}),
            "bad_filename",
        ),
        (
            json!({"filename": "a.jpg", "content_type": "image/jpeg", "size": 10, "sha256": "abc"}),
            "bad_sha256",
        ),
    ];
    for (req, code) in cases {
        let r = h.handle(&presign_request(req.clone())).await;
        assert_refused(&h, &r, 400, code);
    }
}

#[tokio::test]
async fn a_client_file_name_never_reaches_the_object_key() {
    let h = handler();
    let r = h
        .handle(&presign_request(
            json!({"filename": "../../etc/passwd.jpg", "content_type": "image/jpeg", "size": 10}),
        ))
        .await;
    assert_eq!(r.status_code, 201);
    let row = &h.images_rows()[0];
    assert_eq!(row.filename.as_deref(), Some("passwd.jpg"));
    assert_eq!(
        row.original_key.as_str(),
        format!("originals/demo-user/{}", row.image_id)
    );
}

#[tokio::test]
async fn a_storage_failure_on_the_fast_path_leaves_no_row_behind() {
    let h = handler();
    h.store_outage.fail(true);
    let r = h.handle(&request(event("upload-direct.json"))).await;
    assert_eq!(r.status_code, 503);
    assert!(h.images_rows().is_empty());
}

// ------------------------------------------------------------------------------ duplicates

fn presign_of(bytes: &[u8]) -> ApiGatewayV2httpRequest {
    use sha2::{Digest, Sha256};
    presign_request(json!({"filename": "same.png", "content_type": "image/png",
        "size": bytes.len(), "sha256": hex::encode(Sha256::digest(bytes))}))
}

/// The row made for `id`, after the bytes arrived and processing finished.
fn arrive_and_complete(h: &Fixture, id: &str) {
    let mut row = h
        .images
        .rows()
        .into_iter()
        .find(|r| r.image_id.to_string() == id)
        .unwrap();
    row.upload_state = UploadState::Stored;
    row.processing_status = Status::Completed;
    h.images.insert(row);
}

#[tokio::test]
async fn the_same_bytes_again_answer_with_the_existing_image_and_create_nothing() {
    let h = handler();
    let bytes = tiny_png();
    let first = h.handle(&presign_of(&bytes)).await;
    assert_eq!(first.status_code, 201);
    let id = body(&first)["image_id"].as_str().unwrap().to_owned();
    arrive_and_complete(&h, &id);

    let again = h.handle(&presign_of(&bytes)).await;
    assert_eq!(again.status_code, 200, "{:?}", again.body);
    let v = body(&again);
    assert_eq!(v["duplicate_of"], json!(id));
    assert_eq!(v["image_id"], json!(id));
    assert_eq!(v["status"], "completed");
    assert_eq!(
        v["status_url"],
        json!(format!("/api/images/{id}/processing-status"))
    );
    assert!(v.get("upload").is_none(), "nothing to send");
    assert_eq!(h.images.rows().len(), 1, "no second row");

    // The small-file path knows the same bytes too, and stores nothing.
    let direct = h.handle(&direct_request("image/png", &bytes)).await;
    assert_eq!(direct.status_code, 200, "{:?}", direct.body);
    assert_eq!(body(&direct)["duplicate_of"], json!(id));
    assert_eq!(h.images.rows().len(), 1);
    assert!(h.store.keys().is_empty(), "no object written");
}

#[tokio::test]
async fn another_owner_with_the_same_bytes_gets_their_own_image() {
    let h = handler();
    let bytes = tiny_png();
    let first = h.handle(&presign_of(&bytes)).await;
    let id = body(&first)["image_id"].as_str().unwrap().to_owned();
    arrive_and_complete(&h, &id);
    let mut other = presign_of(&bytes);
    other
        .request_context
        .authorizer
        .as_mut()
        .unwrap()
        .jwt
        .as_mut()
        .unwrap()
        .claims
        .insert("sub".into(), "someone-else".into());
    let theirs = h.handle(&other).await;
    assert_eq!(theirs.status_code, 201, "{:?}", theirs.body);
    assert_ne!(body(&theirs)["image_id"], json!(id));
}

#[tokio::test]
async fn an_upload_that_never_sent_its_bytes_is_resumed_with_the_same_image() {
    let h = handler();
    let bytes = tiny_png();
    let first = body(&h.handle(&presign_of(&bytes)).await);
    let again = h.handle(&presign_of(&bytes)).await;
    assert_eq!(again.status_code, 201, "{:?}", again.body);
    let again = body(&again);
    assert_eq!(
        again["image_id"], first["image_id"],
        "the same image, a new link"
    );
    assert_eq!(again["upload"]["url"], first["upload"]["url"]);
    assert_eq!(h.images.rows().len(), 1);
}

#[tokio::test]
async fn bytes_of_a_failed_or_expired_image_make_a_new_one() {
    for state in [UploadState::Expired, UploadState::Rejected] {
        let h = handler();
        let bytes = tiny_png();
        let first = body(&h.handle(&presign_of(&bytes)).await);
        let mut row = h.images.rows().pop().unwrap();
        row.upload_state = state;
        h.images.insert(row);
        let again = h.handle(&presign_of(&bytes)).await;
        assert_eq!(again.status_code, 201);
        assert_ne!(body(&again)["image_id"], first["image_id"], "{state:?}");
        assert_eq!(h.images.rows().len(), 2);
    }
}

#[tokio::test]
async fn concurrent_uploads_of_the_same_bytes_make_one_image() {
    let h = handler();
    let bytes = tiny_png();
    let requests: Vec<_> = (0..8).map(|_| presign_of(&bytes)).collect();
    let answers = futures::future::join_all(requests.iter().map(|r| h.handle(r))).await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|a| body(a)["image_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(h.images.rows().len(), 1, "the losers' rows are removed");
}

// ------------------------------------------------------------------------------ fairness

/// A request of `owner` (the JWT authorizer's `sub`).
fn as_owner(mut r: ApiGatewayV2httpRequest, owner: &str) -> ApiGatewayV2httpRequest {
    r.request_context
        .authorizer
        .as_mut()
        .unwrap()
        .jwt
        .as_mut()
        .unwrap()
        .claims
        .insert("sub".into(), owner.into());
    r
}

fn presign_as(owner: &str, n: usize) -> ApiGatewayV2httpRequest {
    as_owner(
        presign_request(
            json!({"filename": format!("p{n}.jpg"), "content_type": "image/jpeg", "size": 1000}),
        ),
        owner,
    )
}

fn retry_after(r: &ApiGatewayV2httpResponse) -> u64 {
    r.headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in {:?}", r.headers))
}

/// Makes this thread's clock start `secs_into` seconds into a minute (the test takes far less
/// than the rest of it), so a test's requests share one rate window.
fn clock_at(secs_into: i64) -> i64 {
    let minute = 1_800_000_000_000; // a whole minute: 30 000 000 of them since the epoch
    safelight::determinism::install(minute + secs_into * 1000, 1);
    minute
}

#[tokio::test]
async fn an_owner_past_the_upload_rate_gets_429_with_retry_after_while_another_owner_is_served() {
    clock_at(45);
    let h = handler_with(OwnerLimits {
        uploads_per_minute: 3,
        ..OwnerLimits::default()
    });
    for n in 0..3 {
        let r = h.handle(&presign_as("greedy", n)).await;
        assert_eq!(r.status_code, 201, "{:?}", r.body);
    }
    let refused = h.handle(&presign_as("greedy", 3)).await;
    assert_eq!(refused.status_code, 429, "{:?}", refused.body);
    assert_eq!(body(&refused)["error"]["code"], "rate_limited");
    assert_eq!(retry_after(&refused), 15, "what is left of the minute");
    // A direct upload counts against the same rate, and a refusal writes nothing.
    let direct = h
        .handle(&as_owner(
            direct_request("image/png", &tiny_png()),
            "greedy",
        ))
        .await;
    assert_eq!(direct.status_code, 429);
    assert_eq!(h.images_rows().len(), 3);
    assert!(h.store_keys().is_empty());

    let other = h.handle(&presign_as("patient", 0)).await;
    assert_eq!(other.status_code, 201, "another owner is unaffected");
    safelight::determinism::uninstall();
}

#[tokio::test]
async fn the_upload_rate_counts_per_minute_so_the_next_minute_is_served_again() {
    let minute = clock_at(59);
    let h = handler_with(OwnerLimits {
        uploads_per_minute: 1,
        ..OwnerLimits::default()
    });
    assert_eq!(h.handle(&presign_as("u", 0)).await.status_code, 201);
    let refused = h.handle(&presign_as("u", 1)).await;
    assert_eq!(refused.status_code, 429);
    assert_eq!(retry_after(&refused), 1);
    safelight::determinism::install(minute + 60_000, 1);
    assert_eq!(h.handle(&presign_as("u", 2)).await.status_code, 201);
    let owner: safelight::OwnerId = "u".parse().unwrap();
    let window = safelight::Timestamp::from_unix_millis(minute);
    assert_eq!(
        h.rates.count(&owner, window),
        1,
        "the refusal was not counted"
    );
    safelight::determinism::uninstall();
}

#[tokio::test]
async fn uploads_awaiting_their_bytes_are_limited_per_owner_and_an_arrival_or_expiry_frees_a_slot()
{
    let minute = clock_at(0);
    let h = handler_with(OwnerLimits {
        max_awaiting_uploads: 2,
        ..OwnerLimits::default()
    });
    let first = h.handle(&presign_as("busy", 0)).await;
    assert_eq!(first.status_code, 201);
    assert_eq!(h.handle(&presign_as("busy", 1)).await.status_code, 201);
    let refused = h.handle(&presign_as("busy", 2)).await;
    assert_eq!(refused.status_code, 429, "{:?}", refused.body);
    assert_eq!(body(&refused)["error"]["code"], "too_many_pending_uploads");
    assert_eq!(
        retry_after(&refused),
        safelight::limits::AWAITING_RETRY_AFTER_CAP_SECS,
        "the links live 15 minutes: the cap"
    );
    assert_eq!(h.images_rows().len(), 2, "the refusal wrote no row");
    assert_eq!(
        h.handle(&presign_as("calm", 0)).await.status_code,
        201,
        "another owner is unaffected"
    );

    // The first one's bytes arrive: a slot is free.
    let id = body(&first)["image_id"].as_str().unwrap().to_owned();
    arrive_and_complete(&h, &id);
    assert_eq!(h.handle(&presign_as("busy", 3)).await.status_code, 201);
    assert_eq!(h.handle(&presign_as("busy", 4)).await.status_code, 429);

    // Bytes that never come: once their links have expired, those rows stop counting even
    // before the sweeper marks them expired.
    safelight::determinism::install(minute + 901_000, 1);
    assert_eq!(h.handle(&presign_as("busy", 5)).await.status_code, 201);
    safelight::determinism::uninstall();
}

#[tokio::test]
async fn a_limit_that_cannot_be_checked_answers_503_and_is_never_skipped() {
    let h = handler();
    h.rates_outage.fail(true);
    let r = h.handle(&presign_as("u", 0)).await;
    assert_eq!(r.status_code, 503);
    assert!(h.images_rows().is_empty());
}
