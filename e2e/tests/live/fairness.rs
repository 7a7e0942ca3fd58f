//! Fair to every owner, through the deployed stack with the template's default limits: an owner
//! past a limit gets 429 with `Retry-After` while another owner's uploads and notices go on, and a
//! `resume` of a long replay log comes back in pages the client follows.

use std::time::Duration;

use anyhow::{bail, Result};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::stream::{self, StreamExt};
use safelight::limits::OwnerLimits;
use safelight_e2e::Stack;
use serde_json::{json, Value};
use testkit::jpeg;

use super::socket::{of_image, Socket, COMPLETE};
use super::{is_terminal_for, wait_connections, SETTLE};

/// One `POST /api/images/upload` with a JSON body: status, `Retry-After` (seconds) and body.
async fn upload_request(
    stack: &Stack,
    token: &str,
    body: &Value,
) -> Result<(u16, Option<u64>, Value)> {
    let resp = stack
        .http()
        .post(stack.api("/api/images/upload")?)
        .bearer_auth(token)
        .json(body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Ok((
        status,
        retry_after,
        resp.json().await.unwrap_or(Value::Null),
    ))
}

fn presign_body(n: usize) -> Value {
    json!({"filename": format!("never-sent-{n}.jpg"), "content_type": "image/jpeg", "size": 1000})
}

#[tokio::test]
async fn an_owner_past_their_limits_gets_429_with_retry_after_while_another_owner_is_unaffected(
) -> Result<()> {
    let stack = Stack::load().await?;
    let limits = OwnerLimits::default();
    let (greedy, greedy_token) = stack.fresh_user().await?;
    let (calm, calm_token) = stack.fresh_user().await?;
    let mut calm_socket = Socket::open(&stack, &calm_token).await?;
    wait_connections(&stack, &calm, 1).await?;

    // Uploads awaiting their bytes: the greedy owner asks for links and never sends the bytes.
    let awaiting = limits.max_awaiting_uploads as usize;
    for n in 0..awaiting {
        let (status, _, body) = upload_request(&stack, &greedy_token, &presign_body(n)).await?;
        assert_eq!(status, 201, "link {n}: {body}");
    }
    let (status, retry_after, body) =
        upload_request(&stack, &greedy_token, &presign_body(awaiting)).await?;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_pending_uploads", "{body}");
    let secs = retry_after.expect("a 429 carries Retry-After");
    assert!(
        (1..=safelight::limits::AWAITING_RETRY_AFTER_CAP_SECS).contains(&secs),
        "{secs}"
    );

    // The request rate: every request counts, so a malformed one is enough to use it up. The
    // window is the minute; the loop may straddle two, so it runs up to two windows' worth.
    let per_minute = limits.uploads_per_minute as usize;
    let malformed = json!({});
    let results: Vec<(u16, Option<u64>, Value)> = stream::iter(0..2 * per_minute + 2)
        .map(|_| upload_request(&stack, &greedy_token, &malformed))
        .buffered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let limited: Vec<_> = results
        .iter()
        .filter(|(status, _, _)| *status == 429)
        .collect();
    assert!(
        !limited.is_empty(),
        "no request was refused: {:?}",
        results.last()
    );
    for (_, retry_after, body) in &limited {
        assert_eq!(body["error"]["code"], "rate_limited", "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        let secs = retry_after.expect("a 429 carries Retry-After");
        assert!((1..=60).contains(&secs), "{secs}");
    }
    let served = results
        .iter()
        .filter(|(status, _, _)| *status == 400)
        .count();
    assert!(
        served >= per_minute - awaiting - 1,
        "served {served} before refusing"
    );

    // Open sockets: the greedy owner fills its connections; the next handshake is refused.
    let max = limits.max_connections as usize;
    let mut sockets = Vec::new();
    for _ in 0..max {
        sockets.push(Socket::open(&stack, &greedy_token).await?);
    }
    wait_connections(&stack, &greedy, max).await?;
    let refused = Socket::try_open(&stack, Some(&greedy_token)).await?;
    // AWS answers the handshake with `$connect`'s 429 (and its Retry-After); the local emulator
    // turns every non-2xx `$connect` answer into 403. Either way no socket opens, no row is kept.
    let status = refused.err();
    assert!(matches!(status, Some(429 | 403)), "{status:?}");
    wait_connections(&stack, &greedy, max).await?;

    // Meanwhile the calm owner uploads, is served, and hears every notice of its image.
    let second = Socket::open(&stack, &calm_token).await?;
    let id = stack
        .upload(&calm_token, "image/jpeg", &jpeg(800, 600))
        .await?;
    let frames = calm_socket.until(SETTLE, is_terminal_for(&id)).await?;
    let mine = of_image(&frames, &id);
    assert_eq!(
        mine.last().map(|f| f["type"].clone()),
        Some(json!(COMPLETE)),
        "{frames:?}"
    );

    // A closed socket frees its slot.
    if let Some(one) = sockets.pop() {
        one.close().await?;
    }
    wait_connections(&stack, &greedy, max - 1).await?;
    sockets.push(Socket::open(&stack, &greedy_token).await?);

    for s in sockets {
        s.close().await?;
    }
    second.close().await?;
    calm_socket.close().await
}

/// A stored notice row as `notify` writes it (see `safelight::aws::realtime`).
fn notice_item(owner: &str, seq: u64, expires_at: i64) -> Result<WriteRequest> {
    let record = testkit::image(owner).size(1).build();
    let notice = safelight::Notice::new(safelight::NoticeType::ThumbnailComplete, &record, seq);
    let s = |v: String| AttributeValue::S(v);
    let n = |v: String| AttributeValue::N(v);
    let put = PutRequest::builder()
        .item("owner_id", s(owner.to_owned()))
        .item("seq", n(seq.to_string()))
        .item("type", s(notice.kind.as_str().to_owned()))
        .item("image_id", s(notice.image_id.to_string()))
        .item("notice", s(serde_json::to_string(&notice)?))
        .item("expires_at", n(expires_at.to_string()))
        .item(
            "stored_at",
            n(safelight::Timestamp::now().unix_millis().to_string()),
        )
        .build()?;
    Ok(WriteRequest::builder().put_request(put).build())
}

#[tokio::test]
async fn a_resume_from_zero_after_5000_notices_comes_back_in_pages() -> Result<()> {
    const NOTICES: u64 = 5000;
    let stack = Stack::load().await?;
    let (owner, token) = stack.fresh_user().await?;
    let table = stack.var("SAFELIGHT_NOTICES_TABLE")?.to_owned();
    let ddb = stack.dynamodb();
    let expires = safelight::Timestamp::now().plus_secs(3600).unix_seconds();
    // Written straight into the replay log, 25 per BatchWriteItem, as notify would have.
    let batches: Vec<Vec<WriteRequest>> = (1..=NOTICES)
        .map(|seq| notice_item(&owner, seq, expires))
        .collect::<Result<Vec<_>>>()?
        .chunks(25)
        .map(<[WriteRequest]>::to_vec)
        .collect();
    for batch in batches {
        let mut pending = batch;
        for _ in 0..10 {
            let out = ddb
                .batch_write_item()
                .request_items(&table, pending)
                .send()
                .await?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&table))
                .unwrap_or_default();
            if pending.is_empty() {
                break;
            }
        }
        if !pending.is_empty() {
            bail!("the notices table kept refusing a batch");
        }
    }

    let page = OwnerLimits::default().resume_page as usize;
    let mut ws = Socket::open(&stack, &token).await?;
    let mut since = 0;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        ws.send(&json!({"action": "resume", "since": since}))
            .await?;
        let frames = ws
            .until(Duration::from_secs(30), |f| {
                f["type"] == "resume:more" || f["type"] == "resumed"
            })
            .await?;
        pages += 1;
        let (end, notices) = frames.split_last().expect("until returns the end frame");
        let seqs: Vec<u64> = notices.iter().filter_map(|f| f["seq"].as_u64()).collect();
        assert!(
            seqs.len() <= page,
            "page {pages} holds {} notices",
            seqs.len()
        );
        assert_eq!(end["replayed"].as_u64(), Some(seqs.len() as u64), "{end}");
        seen.extend(seqs);
        if end["type"] == "resumed" {
            assert_eq!(end["last_seq"], json!(NOTICES), "{end}");
            break;
        }
        since = end["after"]
            .as_u64()
            .expect("resume:more names where to go on");
        assert!(pages < 200, "the replay never ends");
    }
    assert_eq!(pages, NOTICES as usize / page);
    assert_eq!(
        seen,
        (1..=NOTICES).collect::<Vec<_>>(),
        "every notice once, in order"
    );
    ws.close().await
}
