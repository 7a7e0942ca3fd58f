//! Oversized and malformed requests to every route, and malformed WebSocket frames: each gets
//! its documented JSON error (never a 5xx, never a partial write), and the connection stays
//! usable.

use std::time::Duration;

use anyhow::Result;
use safelight::ImageId;
use safelight_e2e::{jpeg, Stack};
use serde_json::{json, Value};

use crate::socket::Socket;
use crate::{code, terminal, SETTLE};

/// Sends `body` as `content_type` (none when `None`) to `path`; status and JSON answer.
async fn raw(
    stack: &Stack,
    method: reqwest::Method,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<(u16, Value)> {
    let mut req = stack
        .http()
        .request(method, stack.api(path)?)
        .bearer_auth(token)
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(
        status < 500,
        "{path}: a malformed request answered {status}: {body}"
    );
    if status >= 400 {
        assert!(ct.starts_with("application/json"), "{path}: {ct}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.len() > 5),
            "{path}: no readable message in {body}"
        );
    }
    Ok((status, body))
}

/// A fast-path case: name, declared type, body, expected status and code.
type FastCase<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);

fn upload_json(extra: Value) -> Vec<u8> {
    let mut base = json!({"filename": "a.jpg", "content_type": "image/jpeg", "size": 100});
    for (k, v) in extra.as_object().into_iter().flatten() {
        base[k] = v.clone();
    }
    base.to_string().into_bytes()
}

#[tokio::test]
async fn the_upload_route_refuses_malformed_and_oversized_json_with_its_error_codes() -> Result<()>
{
    let stack = Stack::load().await?;
    let (sub, token) = stack.fresh_user().await?;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "truncated",
            b"{\"filename\": \"a.jpg\", ".to_vec(),
            400,
            "bad_json",
        ),
        ("an array", b"[]".to_vec(), 400, "bad_json"),
        ("a string", b"\"a.jpg\"".to_vec(), 400, "bad_json"),
        ("null", b"null".to_vec(), 400, "bad_json"),
        ("not UTF-8", vec![b'{', 0xff, 0xfe, b'}'], 400, "bad_json"),
        ("100000 nested arrays", deep.into_bytes(), 413, "too_large"),
        (
            "size as text",
            upload_json(json!({"size": "100"})),
            400,
            "bad_json",
        ),
        (
            "negative size",
            upload_json(json!({"size": -1})),
            400,
            "bad_json",
        ),
        (
            "fractional size",
            upload_json(json!({"size": 1.5})),
            400,
            "bad_json",
        ),
        (
            "size past u64",
            br#"{"filename":"a.jpg","content_type":"image/jpeg","size":18446744073709551616}"#
                .to_vec(),
            400,
            "bad_json",
        ),
        (
            "size 1e30",
            br#"{"filename":"a.jpg","content_type":"image/jpeg","size":1e30}"#.to_vec(),
            400,
            "bad_json",
        ),
        (
            "duplicate field",
            br#"{"filename":"a.jpg","content_type":"image/jpeg","size":1,"size":2}"#.to_vec(),
            400,
            "bad_json",
        ),
        (
            "a chosen owner",
            upload_json(json!({"owner_id": "victim"})),
            400,
            "bad_json",
        ),
        (
            "a chosen key",
            upload_json(json!({"key": "originals/victim/x"})),
            400,
            "bad_json",
        ),
        (
            "a chosen status",
            upload_json(json!({"processing_status": "completed"})),
            400,
            "bad_json",
        ),
        (
            "filename as a number",
            upload_json(json!({"filename": 7})),
            400,
            "bad_json",
        ),
        (
            "a bad checksum",
            upload_json(json!({"sha256": "zz"})),
            400,
            "bad_sha256",
        ),
        (
            "over the size limit",
            upload_json(json!({"size": 26 * 1024 * 1024 + 1})),
            413,
            "too_large",
        ),
        (
            "zero size",
            upload_json(json!({"size": 0})),
            400,
            "empty_file",
        ),
        (
            "an svg",
            upload_json(json!({"content_type": "image/svg+xml"})),
            415,
            "unsupported_type",
        ),
        ("empty", Vec::new(), 400, "empty_body"),
    ];
    // Just over the 16 KiB JSON limit, and far over it.
    let pad = |n: usize| upload_json(json!({"filename": "x".repeat(n)}));
    cases.push(("16 KiB + 1", pad(16 * 1024), 413, "too_large"));
    cases.push(("3 MiB", pad(3 * 1024 * 1024), 413, "too_large"));
    for (name, body, want_status, want_code) in cases {
        let (status, answer) = raw(
            &stack,
            reqwest::Method::POST,
            "/api/images/upload",
            &token,
            Some("application/json"),
            body,
        )
        .await?;
        assert_eq!(
            (status, code(&answer)),
            (want_status, want_code),
            "{name}: {answer}"
        );
    }

    // The fast path: type and size.
    let fast: Vec<FastCase<'_>> = vec![
        (
            "no content type",
            None,
            jpeg(8, 8),
            415,
            "missing_content_type",
        ),
        (
            "text/plain",
            Some("text/plain"),
            b"hello".to_vec(),
            415,
            "unsupported_type",
        ),
        (
            "an svg",
            Some("image/svg+xml"),
            b"<svg/>".to_vec(),
            415,
            "unsupported_type",
        ),
        (
            "4 MiB + 1",
            Some("image/jpeg"),
            {
                let mut b = jpeg(16, 16);
                b.resize(4 * 1024 * 1024 + 1, 0);
                b
            },
            413,
            "too_large",
        ),
        (
            "JSON behind an image type",
            Some("image/png"),
            upload_json(json!({})),
            400,
            "type_mismatch",
        ),
    ];
    for (name, ct, body, want_status, want_code) in fast {
        let (status, answer) = raw(
            &stack,
            reqwest::Method::POST,
            "/api/images/upload",
            &token,
            ct,
            body,
        )
        .await?;
        assert_eq!(
            (status, code(&answer)),
            (want_status, want_code),
            "{name}: {answer}"
        );
    }
    let (_, list) = stack.get("/api/images", Some(&token)).await?;
    assert_eq!(list["items"], json!([]), "a refused upload left a row");
    assert!(stack.keys(&format!("originals/{sub}/")).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn the_image_routes_answer_malformed_queries_ids_and_bodies_with_their_error_codes(
) -> Result<()> {
    let stack = Stack::load().await?;
    let (_, token) = stack.fresh_user().await?;
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    for limit in ["0", "101", "-1", "abc", "1e3", "99999999999999999999", ""] {
        let (status, body) = raw(
            &stack,
            get.clone(),
            &format!("/api/images?limit={limit}"),
            &token,
            None,
            Vec::new(),
        )
        .await?;
        assert_eq!(
            (status, code(&body)),
            (400, "bad_limit"),
            "limit={limit}: {body}"
        );
    }
    let long = "A".repeat(8000);
    // (No `..`: the URL is normalised before it is sent, so it would never reach an image route.)
    for id in ["nope", long.as_str(), "01KB0000000000000000000000'--", "*"] {
        for suffix in ["", "/processing-status"] {
            let (status, body) = raw(
                &stack,
                get.clone(),
                &format!("/api/images/{id}{suffix}"),
                &token,
                None,
                Vec::new(),
            )
            .await?;
            assert_eq!(
                (status, code(&body)),
                (404, "not_found"),
                "{id}{suffix}: {body}"
            );
        }
    }
    // Retry ignores its body: garbage, huge or not, the answer is about the image.
    let id = stack.upload(&token, "image/jpeg", &jpeg(64, 64)).await?;
    stack.wait_status(&token, &id, SETTLE, terminal).await?;
    let missing = ImageId::new();
    let bodies: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        vec![0xff; 16],
        format!("{{\"pad\":\"{}\"}}", "x".repeat(1024 * 1024)).into_bytes(),
    ];
    for body in bodies {
        let (status, answer) = raw(
            &stack,
            post.clone(),
            &format!("/api/images/{missing}/retry-processing"),
            &token,
            Some("application/json"),
            body.clone(),
        )
        .await?;
        assert_eq!((status, code(&answer)), (404, "not_found"), "{answer}");
        let (status, answer) = raw(
            &stack,
            post.clone(),
            &format!("/api/images/{id}/retry-processing"),
            &token,
            Some("application/json"),
            body,
        )
        .await?;
        assert_eq!((status, code(&answer)), (409, "not_failed"), "{answer}");
    }
    Ok(())
}

#[tokio::test]
async fn the_admin_routes_refuse_malformed_bodies_and_unknown_stages() -> Result<()> {
    let stack = Stack::load().await?;
    let admin = stack.token("sub=hostile-admin-inputs&admin=1").await?;
    let post = reqwest::Method::POST;
    // Nothing here may parse as a real run: that would re-enqueue every failed image.
    for body in [
        b"{".to_vec(),
        b"[]".to_vec(),
        br#"{"dry_run": "yes"}"#.to_vec(),
        br#"{"cursor": 5}"#.to_vec(),
        // A misspelt flag must not be read as "not a dry run".
        br#"{"dryRun": true}"#.to_vec(),
        br#"{"dry_run": true, "force": true}"#.to_vec(),
        vec![0xff, 0xfe],
    ] {
        let (status, answer) = raw(
            &stack,
            post.clone(),
            "/api/admin/retry-all-failed",
            &admin,
            Some("application/json"),
            body,
        )
        .await?;
        assert_eq!((status, code(&answer)), (400, "bad_json"), "{answer}");
    }
    let (status, answer) = raw(
        &stack,
        post.clone(),
        "/api/admin/retry-all-failed",
        &admin,
        Some("application/json"),
        br#"{"cursor": "not-a-cursor"}"#.to_vec(),
    )
    .await?;
    assert_eq!((status, code(&answer)), (400, "bad_cursor"), "{answer}");
    for stage in ["nope", "THUMBNAIL", "thumbnail%00", "circuit%23thumbnail"] {
        let (status, answer) = raw(
            &stack,
            post.clone(),
            &format!("/api/admin/circuits/{stage}/reset"),
            &admin,
            None,
            Vec::new(),
        )
        .await?;
        assert_eq!(
            (status, code(&answer)),
            (404, "not_found"),
            "{stage}: {answer}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn malformed_websocket_frames_get_error_frames_and_the_socket_keeps_working() -> Result<()> {
    let stack = Stack::load().await?;
    let (_, token) = stack.fresh_user().await?;
    let mut socket = Socket::open(&stack, &token).await?;
    let pad = "x".repeat(30 * 1024);
    let frames: Vec<(String, &str)> = vec![
        ("not json".into(), "bad_message"),
        ("[]".into(), "bad_message"),
        ("{\"action\":".into(), "bad_message"),
        (json!({"action": "resume"}).to_string(), "bad_resume"),
        (
            json!({"action": "resume", "since": -1}).to_string(),
            "bad_resume",
        ),
        (
            json!({"action": "resume", "since": "0"}).to_string(),
            "bad_resume",
        ),
        (
            json!({"action": "resume", "since": 1.5}).to_string(),
            "bad_resume",
        ),
        (json!({}).to_string(), "unknown_action"),
        (json!({"action": null}).to_string(), "unknown_action"),
        (json!({"action": "PING"}).to_string(), "unknown_action"),
        (
            json!({"action": "subscribe", "owner": "victim"}).to_string(),
            "unknown_action",
        ),
        (
            json!({"action": "x", "pad": pad}).to_string(),
            "unknown_action",
        ),
    ];
    for (frame, want) in frames {
        socket.send_text(frame.clone()).await?;
        let got = socket
            .until(Duration::from_secs(15), |f| f["type"] == "error")
            .await?;
        let last = got.last().unwrap();
        assert_eq!(
            last["code"],
            want,
            "{}: {last}",
            &frame[..frame.len().min(60)]
        );
    }
    socket.send(&json!({"action": "ping"})).await?;
    let pong = socket
        .until(Duration::from_secs(15), |f| f["type"] == "pong")
        .await?;
    assert_eq!(pong.last().unwrap()["type"], "pong");
    socket.close().await
}
