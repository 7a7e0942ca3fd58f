//! Live notices through the deployed local stack, with a real WebSocket client: who may connect,
//! what an upload tells its owner (and nobody else), replay after a drop, stale connections, and
//! the per-owner limits and paged replay (`fairness`).
//!
//! `bench_*` tests are ignored measurements, not assertions:
//! `cargo test -p safelight-e2e --test live -- --ignored --nocapture --test-threads 1`.

// Test code: a broken fixture should panic loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bench;
mod fairness;
mod socket;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Result;
use aws_sdk_dynamodb::types::AttributeValue;
use safelight_e2e::Stack;
use serde_json::{json, Value};
use socket::{count, of_image, types, Socket, COMPLETE, FAILED, THUMBNAIL, VARIANT};
use testkit::jpeg;

/// Upper bound for an upload to be processed on a loaded 2-core machine.
const SETTLE: Duration = Duration::from_secs(90);
/// How long to keep listening after the last expected notice, to catch duplicates and strays.
const QUIET: Duration = Duration::from_millis(2500);

fn is_terminal_for(image_id: &str) -> impl Fn(&Value) -> bool + '_ {
    move |f| f["image_id"] == image_id && (f["type"] == COMPLETE || f["type"] == FAILED)
}

fn seqs(frames: &[&Value]) -> Vec<u64> {
    frames.iter().filter_map(|f| f["seq"].as_u64()).collect()
}

/// The connection ids the connections table holds for `owner`.
async fn connection_ids(stack: &Stack, owner: &str) -> Result<Vec<String>> {
    let out = stack
        .dynamodb()
        .query()
        .table_name(stack.var("SAFELIGHT_CONNECTIONS_TABLE")?)
        .index_name("by_owner")
        .key_condition_expression("owner_id = :o")
        .expression_attribute_values(":o", AttributeValue::S(owner.to_owned()))
        .send()
        .await?;
    Ok(out
        .items()
        .iter()
        .filter_map(|i| i.get("connection_id")?.as_s().ok().cloned())
        .collect())
}

async fn connection_exists(stack: &Stack, id: &str) -> Result<bool> {
    let out = stack
        .dynamodb()
        .get_item()
        .table_name(stack.var("SAFELIGHT_CONNECTIONS_TABLE")?)
        .key("connection_id", AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await?;
    Ok(out.item.is_some())
}

/// Waits for `$connect` / `$disconnect` to reach the table (they run in the ws function).
async fn wait_connections(stack: &Stack, owner: &str, n: usize) -> Result<Vec<String>> {
    let start = std::time::Instant::now();
    loop {
        let ids = connection_ids(stack, owner).await?;
        if ids.len() == n {
            return Ok(ids);
        }
        if start.elapsed() > Duration::from_secs(10) {
            anyhow::bail!("{owner} has {} connection rows, expected {n}", ids.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn missing_expired_forged_and_foreign_tokens_cannot_connect() -> Result<()> {
    let stack = Stack::load().await?;
    let sub = format!("t-refused-{}", ulid::Ulid::new().to_string().to_lowercase());
    let cases = [
        ("no token", None),
        (
            "expired",
            Some(stack.token(&format!("sub={sub}&ttl=-60")).await?),
        ),
        (
            "forged",
            Some(stack.token(&format!("sub={sub}&forge=1")).await?),
        ),
        (
            "other audience",
            Some(stack.token(&format!("sub={sub}&aud=someone-else")).await?),
        ),
        ("garbage", Some("not-a-jwt".to_owned())),
    ];
    for (why, token) in cases {
        let outcome = Socket::try_open(&stack, token.as_deref()).await?;
        // AWS answers the handshake with the `$connect` function's 401; the emulator refuses
        // every non-2xx `$connect` with 403. Either way no socket opens and no row is stored.
        let status = outcome.err();
        assert!(matches!(status, Some(401 | 403)), "{why}: {status:?}");
    }
    assert!(connection_ids(&stack, &sub).await?.is_empty());
    // The same user with a good token gets in, so the refusals above were about the tokens.
    let good = stack.token(&format!("sub={sub}")).await?;
    let ws = Socket::open(&stack, &good).await?;
    wait_connections(&stack, &sub, 1).await?;
    ws.close().await?;
    wait_connections(&stack, &sub, 0).await?;
    Ok(())
}

#[tokio::test]
async fn ping_answers_pong_and_an_unknown_action_answers_an_error_frame() -> Result<()> {
    let stack = Stack::load().await?;
    let (_, token) = stack.fresh_user().await?;
    let mut ws = Socket::open(&stack, &token).await?;
    ws.send(&json!({"action": "ping"})).await?;
    let pong = ws.next(Duration::from_secs(10)).await?;
    assert_eq!(pong, Some(json!({"type": "pong"})));
    ws.send(&json!({"action": "dance"})).await?;
    let error = ws.next(Duration::from_secs(10)).await?.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "unknown_action");
    ws.close().await
}

#[tokio::test]
async fn the_uploader_hears_each_notice_once_and_another_connected_user_hears_nothing() -> Result<()>
{
    let stack = Stack::load().await?;
    let (a, a_token) = stack.fresh_user().await?;
    let (b, b_token) = stack.fresh_user().await?;
    let mut alice = Socket::open(&stack, &a_token).await?;
    let mut bob = Socket::open(&stack, &b_token).await?;
    wait_connections(&stack, &a, 1).await?;
    wait_connections(&stack, &b, 1).await?;

    let id = stack
        .upload(&a_token, "image/jpeg", &jpeg(1600, 1200))
        .await?;
    let mut frames = alice.until(SETTLE, is_terminal_for(&id)).await?;
    frames.extend(alice.drain(QUIET).await?);
    let mine = of_image(&frames, &id);
    assert_eq!(
        frames.len(),
        mine.len(),
        "only notices of this upload: {frames:?}"
    );
    assert_eq!(count(&mine, THUMBNAIL), 1, "{:?}", types(&mine));
    assert_eq!(count(&mine, VARIANT), 1, "{:?}", types(&mine));
    assert_eq!(count(&mine, COMPLETE), 1, "{:?}", types(&mine));
    assert_eq!(mine.len(), 3, "{:?}", types(&mine));
    assert_eq!(
        mine[2]["type"],
        COMPLETE,
        "complete comes last: {:?}",
        types(&mine)
    );
    let s = seqs(&mine);
    assert!(s.windows(2).all(|w| w[0] < w[1]), "seq increases: {s:?}");
    let complete = mine[2];
    assert_eq!(complete["status"]["processing_status"], "completed");
    assert_eq!(complete["status"]["thumbnail_status"], "completed");
    assert!(complete["status"]["processing_completed_at"].is_string());
    assert!(!complete["thumbnails"].as_object().unwrap().is_empty());
    assert!(!complete["variants"].as_object().unwrap().is_empty());
    assert!(complete["at"].is_string());

    let strays = bob.drain(Duration::from_millis(500)).await?;
    assert!(strays.is_empty(), "bob heard {strays:?}");
    alice.close().await?;
    bob.close().await
}

#[tokio::test]
async fn a_corrupt_upload_gives_exactly_one_failed_notice_with_a_readable_error() -> Result<()> {
    let stack = Stack::load().await?;
    let (a, token) = stack.fresh_user().await?;
    let mut ws = Socket::open(&stack, &token).await?;
    wait_connections(&stack, &a, 1).await?;
    let garbage = b"this is not a JPEG at all, just text pretending to be one.".repeat(40);
    let id = stack.upload(&token, "image/jpeg", &garbage).await?;
    let mut frames = ws.until(SETTLE, is_terminal_for(&id)).await?;
    frames.extend(ws.drain(QUIET).await?);
    let mine = of_image(&frames, &id);
    assert_eq!(types(&mine), [FAILED], "{frames:?}");
    let failed = mine[0];
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.len() > 10 && !error.contains('{') && error.chars().all(|c| !c.is_control()),
        "readable: {error:?}"
    );
    assert!(
        matches!(
            failed["error_kind"].as_str(),
            Some("permanent" | "rejected")
        ),
        "{failed}"
    );
    assert_eq!(failed["retryable"], false);
    assert_eq!(failed["status"]["processing_status"], "failed");
    assert_eq!(failed["status"]["processing_error"], error);
    ws.close().await
}

#[tokio::test]
async fn a_client_that_drops_mid_processing_gets_what_it_missed_on_resume_exactly_once(
) -> Result<()> {
    let stack = Stack::load().await?;
    let (a, token) = stack.fresh_user().await?;
    let mut ws = Socket::open(&stack, &token).await?;
    wait_connections(&stack, &a, 1).await?;
    let id = stack.upload(&token, "image/jpeg", &jpeg(1200, 900)).await?;

    // The first notice arrives; the network "drops" right after it.
    let first = ws.next(SETTLE).await?.expect("a first notice");
    assert_eq!(first["image_id"], id.as_str());
    assert!(
        first["type"] == THUMBNAIL || first["type"] == VARIANT,
        "{first}"
    );
    let since = first["seq"].as_u64().unwrap();
    ws.close().await?;
    wait_connections(&stack, &a, 0).await?;

    // Processing finishes while the client is away.
    stack
        .wait_status(&token, &id, SETTLE, |s| {
            s["processing_status"] == "completed"
        })
        .await?;

    let mut ws = Socket::open(&stack, &token).await?;
    ws.send(&json!({"action": "resume", "since": since}))
        .await?;
    let mut frames = ws
        .until(Duration::from_secs(20), |f| f["type"] == "resumed")
        .await?;
    let resumed = frames.pop().unwrap();
    frames.extend(ws.drain(QUIET).await?);
    let replayed: Vec<&Value> = frames.iter().collect();
    let mut kinds = types(&replayed);
    kinds.sort();
    let mut expected = vec![
        COMPLETE.to_owned(),
        if first["type"] == THUMBNAIL {
            VARIANT
        } else {
            THUMBNAIL
        }
        .to_owned(),
    ];
    expected.sort();
    assert_eq!(kinds, expected, "exactly the missed notices: {frames:?}");
    assert_eq!(replayed.last().unwrap()["type"], COMPLETE, "in seq order");
    let s = seqs(&replayed);
    assert!(s.iter().all(|&q| q > since), "{s:?}");
    assert!(
        s.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicate: {s:?}"
    );
    assert_eq!(resumed["replayed"], 2);
    assert_eq!(resumed["last_seq"], *s.last().unwrap());

    // Resuming from the end replays nothing.
    ws.send(&json!({"action": "resume", "since": resumed["last_seq"]}))
        .await?;
    let again = ws
        .until(Duration::from_secs(20), |f| f["type"] == "resumed")
        .await?;
    assert_eq!(again.len(), 1, "{again:?}");
    ws.close().await
}

#[tokio::test]
async fn a_connection_closed_without_disconnect_is_removed_on_the_first_410() -> Result<()> {
    let stack = Stack::load().await?;
    let (a, token) = stack.fresh_user().await?;

    // A real connection whose `$disconnect` never reached the table: close it, then put its
    // row back as if the disconnect had been lost.
    let gone = Socket::open(&stack, &token).await?;
    let stale_id = wait_connections(&stack, &a, 1).await?.remove(0);
    gone.close().await?;
    wait_connections(&stack, &a, 0).await?;
    let expires = (std::time::SystemTime::now() + Duration::from_secs(3600))
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    stack
        .dynamodb()
        .put_item()
        .table_name(stack.var("SAFELIGHT_CONNECTIONS_TABLE")?)
        .item("connection_id", AttributeValue::S(stale_id.clone()))
        .item("owner_id", AttributeValue::S(a.clone()))
        .item(
            "connected_at",
            AttributeValue::S("2026-01-01T00:00:00.000Z".into()),
        )
        .item("expires_at", AttributeValue::N(expires.to_string()))
        .send()
        .await?;

    let mut live = Socket::open(&stack, &token).await?;
    let ids: HashSet<String> = wait_connections(&stack, &a, 2).await?.into_iter().collect();
    assert!(ids.contains(&stale_id));

    let id = stack.upload(&token, "image/jpeg", &jpeg(800, 600)).await?;
    let mut frames = live.until(SETTLE, is_terminal_for(&id)).await?;
    frames.extend(live.drain(QUIET).await?);
    let mine = of_image(&frames, &id);
    assert_eq!(
        mine.len(),
        3,
        "the live socket is served normally: {:?}",
        types(&mine)
    );
    assert!(
        !connection_exists(&stack, &stale_id).await?,
        "the stale row is gone"
    );
    assert_eq!(connection_ids(&stack, &a).await?.len(), 1);
    live.close().await
}

#[tokio::test]
async fn notices_are_numbered_per_owner_and_two_sockets_of_one_owner_both_hear_them() -> Result<()>
{
    let stack = Stack::load().await?;
    let (a, token) = stack.fresh_user().await?;
    let mut laptop = Socket::open(&stack, &token).await?;
    let mut phone = Socket::open(&stack, &token).await?;
    wait_connections(&stack, &a, 2).await?;
    let id = stack
        .upload(&token, "image/png", &testkit::png(640, 480))
        .await?;
    let mut by_socket: HashMap<&str, Vec<u64>> = HashMap::new();
    for (name, ws) in [("laptop", &mut laptop), ("phone", &mut phone)] {
        let mut frames = ws.until(SETTLE, is_terminal_for(&id)).await?;
        frames.extend(ws.drain(Duration::from_millis(500)).await?);
        let mine = of_image(&frames, &id);
        by_socket.insert(name, seqs(&mine));
    }
    assert_eq!(by_socket["laptop"], by_socket["phone"]);
    assert_eq!(
        by_socket["laptop"],
        [1, 2, 3],
        "a fresh owner's first upload is numbered from 1"
    );
    laptop.close().await?;
    phone.close().await
}
