//! The ws handler against in-memory ports and real RS256 tokens signed with test keys
//! (`tests/keys/`): who may connect, what `$disconnect` removes, and what `$default` answers.

// Test helpers panic on broken fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use safelight::ports::Connection;
use safelight::testing::{MemoryConnections, MemoryNotices, MemoryPoster};
use safelight::{
    ContentType, ImageId, ImageRecord, NewImage, Notice, NoticeType, OwnerId, Timestamp,
    UploadState,
};
use serde_json::{json, Value};
use ws::token::BoxError;
use ws::{JwtVerifier, KeySource, Ws};

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "safelight";

fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys")
}

/// Key sets served in turn (the last one stays); counts fetches; can be made to fail.
#[derive(Debug)]
struct Keys {
    sets: Mutex<Vec<JwkSet>>,
    fetches: AtomicUsize,
    down: Mutex<bool>,
}

impl Keys {
    fn serving(files: &[&str]) -> Self {
        let sets = files
            .iter()
            .map(|f| {
                serde_json::from_str(&std::fs::read_to_string(keys_dir().join(f)).unwrap()).unwrap()
            })
            .collect();
        Keys {
            sets: Mutex::new(sets),
            fetches: AtomicUsize::new(0),
            down: Mutex::new(false),
        }
    }
}

impl KeySource for &'static Keys {
    async fn fetch(&self) -> Result<JwkSet, BoxError> {
        if *self.down.lock().unwrap() {
            return Err("issuer unreachable".into());
        }
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let mut sets = self.sets.lock().unwrap();
        let set = if sets.len() > 1 {
            sets.remove(0)
        } else {
            sets[0].clone()
        };
        Ok(set)
    }
}

type Handler = Ws<MemoryConnections, MemoryNotices, MemoryPoster, JwtVerifier<&'static Keys>>;

fn handler_with(keys: &'static Keys) -> Handler {
    Ws::new(
        MemoryConnections::default(),
        MemoryNotices::default(),
        MemoryPoster::default(),
        JwtVerifier::new(keys, ISSUER, AUDIENCE).with_refetch_interval(Duration::ZERO),
    )
}

fn handler() -> (Handler, &'static Keys) {
    let keys: &'static Keys = Box::leak(Box::new(Keys::serving(&["jwks-published.json"])));
    (handler_with(keys), keys)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token signed with `key` (`published`, `rotated`, `forged`) under `kid`, with `claims`
/// merged over valid defaults.
fn token(key: &str, kid: &str, claims: Value) -> String {
    let mut all = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice",
                         "iat": now_secs(), "exp": now_secs() + 600});
    for (k, v) in claims.as_object().unwrap() {
        if v.is_null() {
            all.as_object_mut().unwrap().remove(k);
        } else {
            all[k] = v.clone();
        }
    }
    let pem = std::fs::read(keys_dir().join(format!("{key}.pem"))).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    encode(&header, &all, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

fn valid(sub: &str) -> String {
    token("published", "kid-published", json!({ "sub": sub }))
}

fn event(name: &str) -> ApiGatewayWebsocketProxyRequest {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn connect_request(connection_id: &str, token: Option<&str>) -> ApiGatewayWebsocketProxyRequest {
    let mut e = event("ws-connect.json");
    e.request_context.connection_id = Some(connection_id.to_owned());
    let query: std::collections::HashMap<String, String> = token
        .map(|t| [("token".to_owned(), t.to_owned())].into())
        .unwrap_or_default();
    e.query_string_parameters = query.into();
    e
}

fn message(connection_id: &str, body: &str) -> ApiGatewayWebsocketProxyRequest {
    let mut e = event("ws-ping.json");
    e.request_context.connection_id = Some(connection_id.to_owned());
    e.body = Some(body.to_owned());
    e
}

async fn connect(h: &Handler, connection_id: &str, token: Option<&str>) -> ApiGatewayProxyResponse {
    h.handle(&connect_request(connection_id, token)).await
}

fn notice(seq: u64) -> Notice {
    let record = ImageRecord::new(
        NewImage {
            image_id: ImageId::new(),
            owner_id: "alice".parse().unwrap(),
            filename: None,
            content_type: ContentType::Png,
            byte_size: 1,
            sha256: None,
            upload_state: UploadState::Stored,
        },
        Timestamp::now(),
    );
    Notice::new(NoticeType::ThumbnailComplete, &record, seq)
}

fn owner(s: &str) -> OwnerId {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_valid_token_registers_the_connection_for_its_subject_for_at_most_two_hours() {
    let (h, _) = handler();
    let long = token(
        "published",
        "kid-published",
        json!({"sub": "alice", "exp": now_secs() + 5 * 3600}),
    );
    let r = connect(&h, "conn-1", Some(&long)).await;
    assert_eq!(r.status_code, 200);
    let stored = h.connections().row("conn-1").unwrap();
    assert_eq!(stored.owner, owner("alice"));
    let ttl = stored.expires_at.unix_seconds() - stored.connected_at.unix_seconds();
    assert_eq!(ttl, 7200);
}

#[tokio::test]
async fn a_connection_row_never_outlives_the_token_that_opened_it() {
    let (h, _) = handler();
    let exp = now_secs() + 600;
    let short = token(
        "published",
        "kid-published",
        json!({"sub": "alice", "exp": exp}),
    );
    assert_eq!(connect(&h, "conn-1", Some(&short)).await.status_code, 200);
    let stored = h.connections().row("conn-1").unwrap();
    assert_eq!(stored.expires_at.unix_seconds(), exp);
}

#[tokio::test]
async fn missing_expired_forged_and_foreign_tokens_are_refused_with_401_and_store_nothing() {
    let (h, _) = handler();
    let refused = [
        ("no token", None),
        ("empty", Some(String::new())),
        ("garbage", Some("not.a.jwt".to_owned())),
        (
            "expired a minute ago",
            Some(token(
                "published",
                "kid-published",
                json!({"exp": now_secs() - 60}),
            )),
        ),
        (
            "forged: unpublished key, published kid",
            Some(token("forged", "kid-published", json!({}))),
        ),
        (
            "another audience",
            Some(token(
                "published",
                "kid-published",
                json!({"aud": "someone-else"}),
            )),
        ),
        (
            "no audience",
            Some(token("published", "kid-published", json!({"aud": null}))),
        ),
        (
            "another issuer",
            Some(token(
                "published",
                "kid-published",
                json!({"iss": "https://evil.test"}),
            )),
        ),
        (
            "no expiry",
            Some(token("published", "kid-published", json!({"exp": null}))),
        ),
        (
            "a subject that cannot be an owner",
            Some(token("published", "kid-published", json!({"sub": "../x"}))),
        ),
        (
            "unknown kid",
            Some(token("rotated", "kid-rotated", json!({}))),
        ),
    ];
    for (why, t) in refused {
        let r = connect(&h, "conn-x", t.as_deref()).await;
        assert_eq!(r.status_code, 401, "{why}");
    }
    assert!(h.connections().ids().is_empty());
}

#[tokio::test]
async fn a_cognito_style_token_with_client_id_instead_of_aud_is_accepted() {
    let (h, _) = handler();
    let t = token(
        "published",
        "kid-published",
        json!({"aud": null, "client_id": AUDIENCE, "token_use": "access"}),
    );
    assert_eq!(connect(&h, "c", Some(&t)).await.status_code, 200);
}

#[tokio::test]
async fn keys_are_fetched_once_and_again_only_for_an_unknown_kid() {
    let keys: &'static Keys = Box::leak(Box::new(Keys::serving(&[
        "jwks-published.json",
        "jwks-rotated.json",
    ])));
    let h = handler_with(keys);
    for i in 0..5 {
        let r = connect(&h, &format!("c{i}"), Some(&valid("alice"))).await;
        assert_eq!(r.status_code, 200);
    }
    assert_eq!(
        keys.fetches.load(Ordering::SeqCst),
        1,
        "one fetch per cold start"
    );
    // The issuer rotated: a token with the new kid makes the function look again.
    let rotated = token("rotated", "kid-rotated", json!({}));
    assert_eq!(connect(&h, "c-new", Some(&rotated)).await.status_code, 200);
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 2);
    assert_eq!(
        connect(&h, "c-old", Some(&valid("bob"))).await.status_code,
        200
    );
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unreachable_issuer_is_a_server_error_not_a_refusal() {
    let (h, keys) = handler();
    *keys.down.lock().unwrap() = true;
    let r = connect(&h, "c", Some(&valid("alice"))).await;
    assert_eq!(r.status_code, 500);
    *keys.down.lock().unwrap() = false;
    assert_eq!(
        connect(&h, "c", Some(&valid("alice"))).await.status_code,
        200
    );
}

#[tokio::test]
async fn disconnect_removes_the_row() {
    let (h, _) = handler();
    connect(&h, "Xk3bJcrEjoECJ-A=", Some(&valid("alice"))).await;
    assert_eq!(h.connections().ids().len(), 1);
    let r = h.handle(&event("ws-disconnect.json")).await;
    assert_eq!(r.status_code, 200);
    assert!(h.connections().ids().is_empty());
}

#[tokio::test]
async fn ping_gets_a_pong_frame_on_the_callers_connection() {
    let (h, _) = handler();
    connect(&h, "Xk3bJcrEjoECJ-A=", Some(&valid("alice"))).await;
    let r = h.handle(&event("ws-ping.json")).await;
    assert_eq!(r.status_code, 200);
    assert!(r.body.is_none(), "frames go through PostToConnection only");
    assert_eq!(
        h.poster().frames_to("Xk3bJcrEjoECJ-A="),
        [json!({"type": "pong"})]
    );
}

#[tokio::test]
async fn resume_replays_the_callers_unexpired_notices_after_since_in_order() {
    let (h, _) = handler();
    connect(&h, "me", Some(&valid("alice"))).await;
    let later = Timestamp::now().plus_secs(3600);
    let alice = owner("alice");
    // Stored out of order (4 before 3), but none numbered before another arrives after it.
    for seq in [1, 2, 4, 3, 5] {
        h.notices().insert(&alice, notice(seq), later);
    }
    // Expired (the emulator keeps such rows): skipped.
    h.notices()
        .insert(&alice, notice(6), Timestamp::now().plus_secs(-1));
    // Someone else's: never replayed to alice.
    h.notices().insert(&owner("bob"), notice(7), later);

    h.handle(&message("me", r#"{"action":"resume","since":2}"#))
        .await;
    let frames = h.poster().frames_to("me");
    let seqs: Vec<u64> = frames
        .iter()
        .filter(|f| f["type"] == "image:processing:thumbnail_complete")
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert_eq!(
        frames.last().unwrap(),
        &json!({"type": "resumed", "since": 2, "replayed": 3, "last_seq": 5})
    );

    let sample = h
        .handle(&message("me", r#"{"action":"resume","since":5}"#))
        .await;
    assert_eq!(sample.status_code, 200);
    assert_eq!(
        h.poster().frames_to("me").last().unwrap(),
        &json!({"type": "resumed", "since": 5, "replayed": 0, "last_seq": 5})
    );
}

#[tokio::test]
async fn unknown_or_malformed_frames_get_an_error_frame() {
    let (h, _) = handler();
    connect(&h, "me", Some(&valid("alice"))).await;
    for (body, code) in [
        (r#"{"action":"dance"}"#, "unknown_action"),
        (r#"{"nothing":1}"#, "unknown_action"),
        ("hello", "bad_message"),
        (r#"{"action":"resume"}"#, "bad_resume"),
        (r#"{"action":"resume","since":-3}"#, "bad_resume"),
    ] {
        let r = h.handle(&message("me", body)).await;
        assert_eq!(r.status_code, 200, "{body}");
        let last = h.poster().frames_to("me").pop().unwrap();
        assert_eq!(last["type"], "error", "{body}");
        assert_eq!(last["code"], code, "{body}");
    }
}

#[tokio::test]
async fn a_frame_from_a_connection_without_a_live_row_is_told_to_reconnect() {
    let (h, _) = handler();
    let past = Timestamp::now().plus_secs(-1);
    h.connections().insert(Connection {
        connection_id: "expired".into(),
        owner: owner("alice"),
        connected_at: past.plus_secs(-7200),
        expires_at: past,
    });
    h.notices()
        .insert(&owner("alice"), notice(1), Timestamp::now().plus_secs(60));
    for id in ["expired", "never-connected"] {
        h.handle(&message(id, r#"{"action":"resume","since":0}"#))
            .await;
        let frames = h.poster().frames_to(id);
        assert_eq!(frames.len(), 1, "{id}: nothing replayed");
        assert_eq!(frames[0]["code"], "unknown_connection");
    }
}

#[tokio::test]
async fn a_replay_to_a_connection_that_is_gone_stops_and_forgets_it() {
    let (h, _) = handler();
    connect(&h, "me", Some(&valid("alice"))).await;
    h.notices()
        .insert(&owner("alice"), notice(1), Timestamp::now().plus_secs(60));
    h.poster().make_gone("me");
    let r = h
        .handle(&message("me", r#"{"action":"resume","since":0}"#))
        .await;
    assert_eq!(r.status_code, 200);
    assert!(h.connections().ids().is_empty());
}

#[tokio::test]
async fn the_sample_resume_event_replays_everything_kept() {
    let (h, _) = handler();
    connect(&h, "Xk3bJcrEjoECJ-A=", Some(&valid("alice"))).await;
    let later = Timestamp::now().plus_secs(60);
    h.notices().insert(&owner("alice"), notice(1), later);
    h.notices().insert(&owner("alice"), notice(2), later);
    let r = h.handle(&event("ws-resume.json")).await;
    assert_eq!(r.status_code, 200);
    let frames = h.poster().frames_to("Xk3bJcrEjoECJ-A=");
    let seqs: Vec<u64> = frames.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert_eq!(seqs, [1, 2]);
    assert_eq!(frames[2]["type"], "resumed");
}

#[tokio::test]
async fn resume_also_replays_a_notice_numbered_before_since_that_arrived_after_it() {
    let (h, _) = handler();
    connect(&h, "me", Some(&valid("alice"))).await;
    let later = Timestamp::now().plus_secs(3600);
    let alice = owner("alice");
    // Two stream shards: 6 was numbered before 7 but stored after it. A client that saw 7 and
    // resumes from it must still get 6.
    for seq in [5, 7, 6] {
        h.notices().insert(&alice, notice(seq), later);
    }
    h.handle(&message("me", r#"{"action":"resume","since":7}"#))
        .await;
    let seqs: Vec<u64> = h
        .poster()
        .frames_to("me")
        .iter()
        .filter(|f| f["type"] == "image:processing:thumbnail_complete")
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [6], "5 came before 7 and was seen; 6 arrived late");
}
