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
use safelight::limits::OwnerLimits;
use safelight::ports::Connection;
use safelight::testing::{MemoryConnections, MemoryNotices, MemoryPoster};
use safelight::{ContentType, Notice, NoticeType, OwnerId, Timestamp};
use serde_json::{json, Value};
use ws::token::{BoxError, KeyCachePolicy};
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

/// The handler and the test's handles on its ports: clones of the fakes it was given.
struct Fixture {
    handler: Handler,
    connections: MemoryConnections,
    notices: MemoryNotices,
    poster: MemoryPoster,
}

impl Fixture {
    async fn handle(&self, request: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        self.handler.handle(request).await
    }

    fn with_limits(self, limits: OwnerLimits) -> Self {
        Fixture {
            handler: self.handler.with_limits(limits),
            ..self
        }
    }
}

fn handler_with(keys: &'static Keys) -> Fixture {
    let connections = MemoryConnections::default();
    let notices = MemoryNotices::default();
    let poster = MemoryPoster::default();
    let handler = Ws::new(
        connections.clone(),
        notices.clone(),
        poster.clone(),
        JwtVerifier::new(keys, ISSUER, AUDIENCE).with_key_cache(KeyCachePolicy {
            refetch_interval: Duration::ZERO,
            ..KeyCachePolicy::default()
        }),
    );
    Fixture {
        handler,
        connections,
        notices,
        poster,
    }
}

fn handler() -> (Fixture, &'static Keys) {
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
    serde_json::from_value(testkit::event(name)).unwrap()
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

async fn connect(h: &Fixture, connection_id: &str, token: Option<&str>) -> ApiGatewayProxyResponse {
    h.handle(&connect_request(connection_id, token)).await
}

fn notice(seq: u64) -> Notice {
    let record = testkit::image("alice")
        .content_type(ContentType::Png)
        .size(1)
        .build();
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
    let stored = h.connections.row("conn-1").unwrap();
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
    let stored = h.connections.row("conn-1").unwrap();
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
    assert!(h.connections.ids().is_empty());
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
    assert_eq!(h.connections.ids().len(), 1);
    let r = h.handle(&event("ws-disconnect.json")).await;
    assert_eq!(r.status_code, 200);
    assert!(h.connections.ids().is_empty());
}

#[tokio::test]
async fn ping_gets_a_pong_frame_on_the_callers_connection() {
    let (h, _) = handler();
    connect(&h, "Xk3bJcrEjoECJ-A=", Some(&valid("alice"))).await;
    let r = h.handle(&event("ws-ping.json")).await;
    assert_eq!(r.status_code, 200);
    assert!(r.body.is_none(), "frames go through PostToConnection only");
    assert_eq!(
        h.poster.frames_to("Xk3bJcrEjoECJ-A="),
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
        h.notices.insert(&alice, notice(seq), later);
    }
    // Expired (the emulator keeps such rows): skipped.
    h.notices
        .insert(&alice, notice(6), Timestamp::now().plus_secs(-1));
    // Someone else's: never replayed to alice.
    h.notices.insert(&owner("bob"), notice(7), later);

    h.handle(&message("me", r#"{"action":"resume","since":2}"#))
        .await;
    let frames = h.poster.frames_to("me");
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
        h.poster.frames_to("me").last().unwrap(),
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
        let last = h.poster.frames_to("me").pop().unwrap();
        assert_eq!(last["type"], "error", "{body}");
        assert_eq!(last["code"], code, "{body}");
    }
}

#[tokio::test]
async fn a_frame_from_a_connection_without_a_live_row_is_told_to_reconnect() {
    let (h, _) = handler();
    let past = Timestamp::now().plus_secs(-1);
    h.connections.insert(Connection {
        connection_id: "expired".into(),
        owner: owner("alice"),
        connected_at: past.plus_secs(-7200),
        expires_at: past,
    });
    h.notices
        .insert(&owner("alice"), notice(1), Timestamp::now().plus_secs(60));
    for id in ["expired", "never-connected"] {
        h.handle(&message(id, r#"{"action":"resume","since":0}"#))
            .await;
        let frames = h.poster.frames_to(id);
        assert_eq!(frames.len(), 1, "{id}: nothing replayed");
        assert_eq!(frames[0]["code"], "unknown_connection");
    }
}

#[tokio::test]
async fn a_replay_to_a_connection_that_is_gone_stops_and_forgets_it() {
    let (h, _) = handler();
    connect(&h, "me", Some(&valid("alice"))).await;
    h.notices
        .insert(&owner("alice"), notice(1), Timestamp::now().plus_secs(60));
    h.poster.make_gone("me");
    let r = h
        .handle(&message("me", r#"{"action":"resume","since":0}"#))
        .await;
    assert_eq!(r.status_code, 200);
    assert!(h.connections.ids().is_empty());
}

#[tokio::test]
async fn the_sample_resume_event_replays_everything_kept() {
    let (h, _) = handler();
    connect(&h, "Xk3bJcrEjoECJ-A=", Some(&valid("alice"))).await;
    let later = Timestamp::now().plus_secs(60);
    h.notices.insert(&owner("alice"), notice(1), later);
    h.notices.insert(&owner("alice"), notice(2), later);
    let r = h.handle(&event("ws-resume.json")).await;
    assert_eq!(r.status_code, 200);
    let frames = h.poster.frames_to("Xk3bJcrEjoECJ-A=");
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
        h.notices.insert(&alice, notice(seq), later);
    }
    h.handle(&message("me", r#"{"action":"resume","since":7}"#))
        .await;
    let seqs: Vec<u64> = h
        .poster
        .frames_to("me")
        .iter()
        .filter(|f| f["type"] == "image:processing:thumbnail_complete")
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [6], "5 came before 7 and was seen; 6 arrived late");
}

// ------------------------------------------------------------------------------ fairness

fn limited(max_connections: u32, resume_page: u32) -> Fixture {
    let (h, _) = handler();
    h.with_limits(OwnerLimits {
        max_connections,
        resume_page,
        ..OwnerLimits::default()
    })
}

#[tokio::test]
async fn an_owner_at_the_connection_limit_is_refused_with_429_and_retry_after_while_others_connect()
{
    let h = limited(2, 100);
    assert_eq!(
        connect(&h, "a-1", Some(&valid("alice"))).await.status_code,
        200
    );
    assert_eq!(
        connect(&h, "a-2", Some(&valid("alice"))).await.status_code,
        200
    );
    let refused = connect(&h, "a-3", Some(&valid("alice"))).await;
    assert_eq!(refused.status_code, 429);
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry, safelight::limits::CONNECTIONS_RETRY_AFTER_SECS);
    assert!(h.connections.row("a-3").is_none(), "nothing stored");
    assert_eq!(
        connect(&h, "b-1", Some(&valid("bob"))).await.status_code,
        200,
        "another owner is unaffected"
    );

    // A closed socket frees its slot; so does a row past its expiry (a socket whose
    // `$disconnect` never came), without waiting for TTL deletion.
    h.handle(&{
        let mut e = event("ws-disconnect.json");
        e.request_context.connection_id = Some("a-1".to_owned());
        e
    })
    .await;
    assert_eq!(
        connect(&h, "a-4", Some(&valid("alice"))).await.status_code,
        200
    );
    let mut stale = h.connections.row("a-2").unwrap();
    stale.expires_at = Timestamp::now().plus_secs(-1);
    h.connections.insert(stale);
    assert_eq!(
        connect(&h, "a-5", Some(&valid("alice"))).await.status_code,
        200
    );
    assert_eq!(
        connect(&h, "a-6", Some(&valid("alice"))).await.status_code,
        429
    );
}

/// Follows `resume:more` frames from `since` as a client does; returns the notices' seqs in
/// the order received and the number of pages.
async fn resume_all(h: &Fixture, connection_id: &str, since: u64) -> (Vec<u64>, usize) {
    let mut since = since;
    let mut pages = 0;
    loop {
        let before = h.poster.frames_to(connection_id).len();
        let r = h
            .handle(&message(
                connection_id,
                &json!({"action": "resume", "since": since}).to_string(),
            ))
            .await;
        assert_eq!(r.status_code, 200);
        pages += 1;
        assert!(pages <= 100, "resume never ends");
        let frames = h.poster.frames_to(connection_id);
        let end = frames.last().unwrap().clone();
        let page: Vec<u64> = frames[before..]
            .iter()
            .filter_map(|f| f["seq"].as_u64())
            .collect();
        assert_eq!(end["replayed"].as_u64().unwrap() as usize, page.len());
        assert!(page.len() <= 100, "a page is bounded: {}", page.len());
        match end["type"].as_str().unwrap() {
            "resume:more" => {
                assert_eq!(end["since"], json!(since));
                since = end["after"].as_u64().unwrap();
                assert_eq!(
                    Some(&since),
                    page.last(),
                    "the next page starts after this one"
                );
            }
            "resumed" => return (frames_seqs(h, connection_id), pages),
            other => panic!("unexpected end of a page: {other}"),
        }
    }
}

fn frames_seqs(h: &Fixture, connection_id: &str) -> Vec<u64> {
    h.poster
        .frames_to(connection_id)
        .iter()
        .filter_map(|f| f["seq"].as_u64())
        .collect()
}

#[tokio::test]
async fn a_resume_from_zero_after_5000_notices_comes_back_in_bounded_pages_the_client_follows() {
    let h = limited(10, 100);
    connect(&h, "me", Some(&valid("alice"))).await;
    let alice = owner("alice");
    let later = Timestamp::now().plus_secs(3600);
    for seq in 1..=5000 {
        h.notices.insert(&alice, notice(seq), later);
    }
    let (seqs, pages) = resume_all(&h, "me", 0).await;
    assert_eq!(pages, 50);
    assert_eq!(
        seqs,
        (1..=5000).collect::<Vec<_>>(),
        "every notice once, in order"
    );
    assert_eq!(
        h.poster.frames_to("me").last().unwrap(),
        &json!({"type": "resumed", "since": 4900, "replayed": 100, "last_seq": 5000})
    );
}

#[tokio::test]
async fn the_first_page_of_a_resume_keeps_the_old_contract_when_it_holds_everything() {
    let h = limited(10, 10);
    connect(&h, "me", Some(&valid("alice"))).await;
    let alice = owner("alice");
    let later = Timestamp::now().plus_secs(3600);
    for seq in 1..=10 {
        h.notices.insert(&alice, notice(seq), later);
    }
    h.handle(&message("me", r#"{"action":"resume","since":0}"#))
        .await;
    let frames = h.poster.frames_to("me");
    assert_eq!(frames.len(), 11, "ten notices, then the end");
    assert_eq!(
        frames.last().unwrap(),
        &json!({"type": "resumed", "since": 0, "replayed": 10, "last_seq": 10})
    );
    // One more: the first page ends with a continuation instead.
    h.notices.insert(&alice, notice(11), later);
    connect(&h, "me-again", Some(&valid("alice"))).await;
    let (seqs, pages) = resume_all(&h, "me-again", 0).await;
    assert_eq!(pages, 2);
    assert_eq!(seqs, (1..=11).collect::<Vec<_>>());
    assert_eq!(
        h.poster.frames_to("me-again")[10],
        json!({"type": "resume:more", "since": 0, "replayed": 10, "after": 10})
    );
}

#[tokio::test]
async fn a_late_notice_below_since_does_not_count_against_the_page() {
    let h = limited(10, 10);
    connect(&h, "me", Some(&valid("alice"))).await;
    let alice = owner("alice");
    let later = Timestamp::now().plus_secs(3600);
    for seq in (1..=29).filter(|s| *s != 5) {
        h.notices.insert(&alice, notice(seq), later);
    }
    // Numbered 5, stored after 8: a page from 8 replays it first, plus ten after 8.
    h.notices.insert(&alice, notice(5), later);
    h.handle(&message("me", r#"{"action":"resume","since":8}"#))
        .await;
    let seqs = frames_seqs(&h, "me");
    assert_eq!(seqs, [5, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]);
    assert_eq!(
        h.poster.frames_to("me").last().unwrap(),
        &json!({"type": "resume:more", "since": 8, "replayed": 11, "after": 18})
    );
}
