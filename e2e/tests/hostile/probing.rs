//! Another signed-in user probing: someone else's ids, cursors, retry and replay log answer
//! exactly like things that do not exist; admin routes answer 403 to everyone but admins.

use std::time::Duration;

use anyhow::Result;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use safelight::ImageId;
use safelight_e2e::Stack;
use serde_json::{json, Value};
use testkit::jpeg;

use crate::socket::Socket;
use crate::{code, fixture, settled, SETTLE};

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["image_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn another_user_gets_the_same_404_for_my_ids_as_for_ids_that_do_not_exist() -> Result<()> {
    let stack = Stack::load().await?;
    let (_, alice) = stack.fresh_user().await?;
    let (_, bob) = stack.fresh_user().await?;
    let id = stack.upload(&alice, "image/jpeg", &jpeg(120, 90)).await?;
    let missing = ImageId::new().to_string();
    for (method, suffix) in [
        ("GET", ""),
        ("GET", "/processing-status"),
        ("POST", "/retry-processing"),
    ] {
        let call = |who: String, target: String| {
            let stack = &stack;
            async move {
                let path = format!("/api/images/{target}{suffix}");
                if method == "GET" {
                    stack.get(&path, Some(&who)).await
                } else {
                    stack.post_json(&path, Some(&who), &json!({})).await
                }
            }
        };
        let (status, probed) = call(bob.clone(), id.clone()).await?;
        let (missing_status, absent) = call(bob.clone(), missing.clone()).await?;
        assert_eq!(
            (status, code(&probed)),
            (404, "not_found"),
            "{method} {suffix}: {probed}"
        );
        assert_eq!(
            (missing_status, &absent),
            (404, &probed),
            "{method} {suffix}: existence leaks"
        );
        // The id in other spellings is no way around it.
        for spelled in [id.to_lowercase(), format!("{id}%00"), format!("{id}%2F..")] {
            let (status, body) = call(bob.clone(), spelled.clone()).await?;
            assert!(status == 404 || status == 400, "{spelled}: {status} {body}");
        }
    }
    // Positive control: the owner sees it.
    assert_eq!(
        stack
            .get(&format!("/api/images/{id}"), Some(&alice))
            .await?
            .0,
        200
    );
    Ok(())
}

#[tokio::test]
async fn another_user_cannot_retry_my_failed_image_but_i_can() -> Result<()> {
    let stack = Stack::load().await?;
    let (_, alice) = stack.fresh_user().await?;
    let (_, bob) = stack.fresh_user().await?;
    let id = stack
        .upload(&alice, "image/jpeg", &fixture("header-only.jpg"))
        .await?;
    let failed = stack.wait_status(&alice, &id, SETTLE, settled).await?;
    assert_eq!(failed["processing_status"], "failed", "{failed}");
    let path = format!("/api/images/{id}/retry-processing");
    let (status, body) = stack.post_json(&path, Some(&bob), &json!({})).await?;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");
    let (_, after) = stack
        .get(&format!("/api/images/{id}/processing-status"), Some(&alice))
        .await?;
    assert_eq!(
        after["updated_at"], failed["updated_at"],
        "bob's retry changed the row"
    );
    assert_eq!(after["processing_attempts"], failed["processing_attempts"]);
    // Positive control: the owner's retry is accepted.
    let (status, body) = stack.post_json(&path, Some(&alice), &json!({})).await?;
    assert_eq!(status, 202, "{body}");
    Ok(())
}

#[tokio::test]
async fn another_users_cursor_even_edited_never_pages_into_my_images() -> Result<()> {
    let stack = Stack::load().await?;
    let (alice_sub, alice) = stack.fresh_user().await?;
    let (_, bob) = stack.fresh_user().await?;
    let mut alice_ids = Vec::new();
    for _ in 0..3 {
        alice_ids.push(stack.upload(&alice, "image/jpeg", &jpeg(40, 40)).await?);
    }
    let bob_id = stack.upload(&bob, "image/jpeg", &jpeg(40, 40)).await?;
    let (status, page) = stack.get("/api/images?limit=1", Some(&alice)).await?;
    assert_eq!(status, 200, "{page}");
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    // Positive control: alice's cursor pages through alice's images.
    let (_, next) = stack
        .get(
            &format!("/api/images?limit=10&cursor={cursor}"),
            Some(&alice),
        )
        .await?;
    assert_eq!(ids(&next).len(), 2, "{next}");

    // The cursor, and the cursor edited to name alice as the owner.
    let mut edited: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&cursor)?)?;
    for field in ["owner_id", "owner", "sub"] {
        edited[field] = json!(alice_sub);
    }
    let edited = URL_SAFE_NO_PAD.encode(edited.to_string());
    for c in [cursor.as_str(), edited.as_str()] {
        let (status, body) = stack
            .get(&format!("/api/images?limit=100&cursor={c}"), Some(&bob))
            .await?;
        if status == 400 {
            assert_eq!(code(&body), "bad_cursor", "{body}");
            continue;
        }
        assert_eq!(status, 200, "{body}");
        let seen = ids(&body);
        assert!(
            seen.iter().all(|i| *i == bob_id),
            "bob's page with alice's cursor shows {seen:?} (alice has {alice_ids:?})"
        );
    }
    for garbage in ["not-a-cursor", "e30", "eyJ4IjoxfQ", "%00"] {
        let (status, body) = stack
            .get(&format!("/api/images?cursor={garbage}"), Some(&bob))
            .await?;
        assert_eq!(
            (status, code(&body)),
            (400, "bad_cursor"),
            "{garbage}: {body}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn another_users_socket_replays_none_of_my_notices() -> Result<()> {
    let stack = Stack::load().await?;
    let (_, alice) = stack.fresh_user().await?;
    let (_, bob) = stack.fresh_user().await?;
    let id = stack.upload(&alice, "image/jpeg", &jpeg(100, 100)).await?;
    stack.wait_status(&alice, &id, SETTLE, settled).await?;
    let mut socket = Socket::open(&stack, &bob).await?;
    socket
        .send(&json!({"action": "resume", "since": 0}))
        .await?;
    let frames = socket
        .until(Duration::from_secs(15), |f| f["type"] == "resumed")
        .await?;
    assert_eq!(frames.len(), 1, "bob got {frames:?}");
    assert_eq!(frames[0]["replayed"], 0);
    socket.close().await?;
    // Positive control: alice's replay has her notices.
    let mut socket = Socket::open(&stack, &alice).await?;
    socket
        .send(&json!({"action": "resume", "since": 0}))
        .await?;
    let frames = socket
        .until(Duration::from_secs(15), |f| f["type"] == "resumed")
        .await?;
    assert!(
        frames.iter().any(|f| f["image_id"] == id.as_str()),
        "{frames:?}"
    );
    socket.close().await
}

#[tokio::test]
async fn a_non_admin_gets_403_on_every_admin_route_and_no_token_gets_401() -> Result<()> {
    let stack = Stack::load().await?;
    let (_, user) = stack.fresh_user().await?;
    // A user who calls themselves admin, or is in a group named admin, still lacks the scope.
    let named_admin = stack.token("sub=admin-impostor&admin=0").await?;
    let admin_group = stack.token("sub=admin-impostor&groups=admin").await?;
    let routes = [
        ("GET", "/api/admin/processing-queue"),
        ("POST", "/api/admin/retry-all-failed"),
        ("POST", "/api/admin/circuits/thumbnail/reset"),
        ("POST", "/api/admin/circuits/variant/reset"),
    ];
    for (method, path) in routes {
        for token in [&user, &named_admin, &admin_group] {
            let (status, body) = if method == "GET" {
                stack.get(path, Some(token)).await?
            } else {
                stack
                    .post_json(path, Some(token), &json!({"dry_run": false}))
                    .await?
            };
            // API Gateway's AuthorizationScopes refusal comes first ({"message": "Forbidden"});
            // the function's own check answers `forbidden` in the API's contract.
            assert_eq!(status, 403, "{method} {path}: {body}");
            assert!(
                body["message"] == "Forbidden" || code(&body) == "forbidden",
                "{method} {path}: {body}"
            );
        }
        let (status, _) = if method == "GET" {
            stack.get(path, None).await?
        } else {
            stack.post_json(path, None, &json!({})).await?
        };
        assert_eq!(status, 401, "{method} {path} without a token");
    }
    // Positive control: an admin reads the queue view.
    let admin = stack.token("sub=hostile-admin&admin=1").await?;
    let (status, body) = stack
        .get("/api/admin/processing-queue", Some(&admin))
        .await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}
