//! The HTTP API through the deployed local stack: the JWT authorizer, presigned uploads that
//! storage enforces, the fast path, refusals that leave nothing behind, and owner isolation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use anyhow::Result;
use safelight_e2e::Stack;
use serde_json::json;
use sha2::Digest;
use testkit::{jpeg, png};

/// After a refusal: no row in the user's list and no object under their originals.
async fn assert_nothing_left(stack: &Stack, sub: &str, token: &str) -> Result<()> {
    let (status, list) = stack.get("/api/images", Some(token)).await?;
    assert_eq!(status, 200);
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(0),
        "a refused request left a row: {list}"
    );
    assert!(
        stack.keys(&format!("originals/{sub}/")).await?.is_empty(),
        "a refused request left an object"
    );
    Ok(())
}

#[tokio::test]
async fn a_request_without_a_token_is_refused_by_the_authorizer() -> Result<()> {
    let stack = Stack::load().await?;
    let (status, _) = stack.get("/api/images", None).await?;
    assert_eq!(status, 401);
    let (status, _) = stack
        .post_json(
            "/api/images/upload",
            None,
            &json!({"filename": "a.jpg", "content_type": "image/jpeg", "size": 10}),
        )
        .await?;
    assert_eq!(status, 401);
    let expired = stack.token("sub=someone&ttl=-60").await?;
    assert_eq!(stack.get("/api/images", Some(&expired)).await?.0, 401);
    let forged = stack.token("sub=someone&forge=1").await?;
    assert_eq!(stack.get("/api/images", Some(&forged)).await?.0, 401);
    Ok(())
}

#[tokio::test]
async fn a_presigned_put_of_a_real_jpeg_lands_and_the_status_row_is_visible() -> Result<()> {
    let stack = Stack::load().await?;
    let (sub, token) = stack.fresh_user().await?;
    let photo = jpeg(640, 480);
    let (status, body) = stack
        .presign(&token, "cat.jpg", "image/jpeg", photo.len())
        .await?;
    assert_eq!(status, 201, "{body}");
    let id = body["image_id"].as_str().unwrap();
    let expires = body["upload"]["expires_at"].as_str().unwrap();
    assert!(expires > "2026", "{expires}");
    assert_eq!(
        stack.put_presigned(&body["upload"], photo.clone()).await?,
        200
    );
    assert_eq!(stack.object(&format!("originals/{sub}/{id}")).await?, photo);

    let (status, row) = stack
        .get(body["status_url"].as_str().unwrap(), Some(&token))
        .await?;
    assert_eq!(status, 200, "{row}");
    assert_eq!(row["image_id"], id);
    for field in [
        "processing_status",
        "thumbnail_status",
        "variant_status",
        "processing_attempts",
    ] {
        assert!(!row[field].is_null(), "{field} missing in {row}");
    }
    Ok(())
}

#[tokio::test]
async fn storage_refuses_a_put_that_breaks_the_signed_type_size_or_checksum() -> Result<()> {
    let stack = Stack::load().await?;
    let (sub, token) = stack.fresh_user().await?;
    let photo = jpeg(320, 240);
    let digest = hex::encode(sha2::Sha256::digest(&photo));
    let (status, body) = stack
        .post_json(
            "/api/images/upload",
            Some(&token),
            &json!({"filename": "a.jpg", "content_type": "image/jpeg", "size": photo.len(), "sha256": digest}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let upload = &body["upload"];
    let url = upload["url"].as_str().unwrap();
    let send = |content_type: &str, len_header: usize, bytes: Vec<u8>| {
        let mut req = stack.http().put(url).body(bytes);
        for (k, v) in upload["headers"].as_object().unwrap() {
            let v = match k.as_str() {
                "content-type" => content_type.to_owned(),
                "content-length" => len_header.to_string(),
                _ => v.as_str().unwrap().to_owned(),
            };
            req = req.header(k, v);
        }
        req.send()
    };
    let wrong_type = send("image/png", photo.len(), photo.clone()).await?;
    assert!(
        wrong_type.status().is_client_error(),
        "another content type was accepted: {}",
        wrong_type.status()
    );
    let mut bigger = photo.clone();
    bigger.extend_from_slice(&[0u8; 1024]);
    let too_big = send("image/jpeg", bigger.len(), bigger).await?;
    assert!(
        too_big.status().is_client_error(),
        "a larger body was accepted: {}",
        too_big.status()
    );
    let mut tampered = photo.clone();
    let last = tampered.len() - 3;
    tampered[last] ^= 0xff;
    let bad_sum = send("image/jpeg", tampered.len(), tampered).await?;
    assert!(
        bad_sum.status().is_client_error(),
        "a body with another checksum was accepted: {}",
        bad_sum.status()
    );
    assert!(stack.keys(&format!("originals/{sub}/")).await?.is_empty());
    // The signed request itself still works.
    assert_eq!(
        send("image/jpeg", photo.len(), photo.clone())
            .await?
            .status()
            .as_u16(),
        200
    );
    Ok(())
}

/// Other bytes of the same length and type as `photo`: what a reused upload URL would carry.
fn same_size_other_picture(photo: &[u8]) -> Vec<u8> {
    let mut other = photo.to_vec();
    // Flip bits in the middle of the entropy-coded data: still a JPEG, another picture.
    let mid = other.len() / 2;
    for b in &mut other[mid..mid + 64] {
        *b = b.wrapping_add(0x55);
    }
    other
}

#[tokio::test]
async fn a_presigned_put_reused_after_processing_is_refused_and_changes_nothing() -> Result<()> {
    let stack = Stack::load().await?;
    let (sub, token) = stack.fresh_user().await?;
    let photo = jpeg(800, 600);
    let (status, body) = stack
        .presign(&token, "a.jpg", "image/jpeg", photo.len())
        .await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["upload"]["headers"]["if-none-match"], "*", "{body}");
    assert_eq!(
        stack.put_presigned(&body["upload"], photo.clone()).await?,
        200
    );
    let id = body["image_id"].as_str().unwrap();
    let done = stack
        .wait_status(&token, id, Duration::from_secs(60), |v| {
            v["processing_status"] == "completed"
        })
        .await?;

    let again = stack
        .put_presigned(&body["upload"], same_size_other_picture(&photo))
        .await?;
    assert_eq!(again, 412, "a second write to the original is refused");
    assert_eq!(stack.object(&format!("originals/{sub}/{id}")).await?, photo);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, after) = stack
        .get(&format!("/api/images/{id}/processing-status"), Some(&token))
        .await?;
    assert_eq!(after["updated_at"], done["updated_at"], "{after}");
    assert_eq!(after["thumbnails"], done["thumbnails"]);
    Ok(())
}

#[tokio::test]
async fn a_presigned_put_reused_while_the_image_is_processing_is_refused() -> Result<()> {
    let stack = Stack::load().await?;
    let (sub, token) = stack.fresh_user().await?;
    let photo = jpeg(1600, 1200);
    let (status, body) = stack
        .presign(&token, "a.jpg", "image/jpeg", photo.len())
        .await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        stack.put_presigned(&body["upload"], photo.clone()).await?,
        200
    );
    // At once, before (or while) the processors read it.
    let again = stack
        .put_presigned(&body["upload"], same_size_other_picture(&photo))
        .await?;
    assert_eq!(again, 412);
    let id = body["image_id"].as_str().unwrap();
    let done = stack
        .wait_status(&token, id, Duration::from_secs(60), |v| {
            matches!(
                v["processing_status"].as_str(),
                Some("completed" | "failed")
            )
        })
        .await?;
    assert_eq!(done["processing_status"], "completed", "{done}");
    assert_eq!(stack.object(&format!("originals/{sub}/{id}")).await?, photo);
    Ok(())
}

#[tokio::test]
async fn the_post_policy_accepts_the_file_and_refuses_a_larger_or_smaller_one() -> Result<()> {
    let stack = Stack::load().await?;
    let (sub, token) = stack.fresh_user().await?;
    let photo = png(64, 64);
    let (status, body) = stack
        .presign(&token, "a.png", "image/png", photo.len())
        .await?;
    assert_eq!(status, 201, "{body}");
    let post = &body["upload_post"];
    let form = |bytes: Vec<u8>| {
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in post["fields"].as_object().unwrap() {
            form = form.text(k.clone(), v.as_str().unwrap().to_owned());
        }
        form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("a.png"),
        )
    };
    let url = post["url"].as_str().unwrap();
    let mut bigger = photo.clone();
    bigger.extend_from_slice(&[0u8; 4096]);
    let refused = stack
        .http()
        .post(url)
        .multipart(form(bigger))
        .send()
        .await?;
    assert!(
        refused.status().is_client_error(),
        "over the policy's range: {}",
        refused.status()
    );
    let smaller = photo[..photo.len() - 100].to_vec();
    let refused = stack
        .http()
        .post(url)
        .multipart(form(smaller))
        .send()
        .await?;
    assert!(
        refused.status().is_client_error(),
        "a smaller body than declared: {}",
        refused.status()
    );
    let ok = stack
        .http()
        .post(url)
        .multipart(form(photo.clone()))
        .send()
        .await?;
    assert!(
        ok.status().is_success(),
        "{} {}",
        ok.status(),
        ok.text().await?
    );
    let id = body["image_id"].as_str().unwrap();
    assert_eq!(stack.object(&format!("originals/{sub}/{id}")).await?, photo);
    Ok(())
}

#[tokio::test]
async fn a_small_file_posted_directly_is_stored_and_answered_at_once() -> Result<()> {
    let stack = Stack::load().await?;
    let (sub, token) = stack.fresh_user().await?;
    let photo = jpeg(200, 150);
    let (status, body) = stack
        .post_bytes(
            "/api/images/upload",
            Some(&token),
            "image/jpeg",
            photo.clone(),
        )
        .await?;
    assert_eq!(status, 202, "{body}");
    let id = body["image_id"].as_str().unwrap();
    assert_eq!(stack.object(&format!("originals/{sub}/{id}")).await?, photo);
    let (status, _) = stack
        .get(&format!("/api/images/{id}"), Some(&token))
        .await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn every_refusal_is_clear_json_and_leaves_no_row_and_no_object() -> Result<()> {
    let stack = Stack::load().await?;
    let (sub, token) = stack.fresh_user().await?;
    let cases = [
        (
            json!({"filename": "a.svg", "content_type": "image/svg+xml", "size": 10}),
            415,
            "unsupported_type",
        ),
        (
            json!({"filename": "a.jpg", "content_type": "image/jpeg", "size": 26 * 1024 * 1024}),
            413,
            "too_large",
        ),
        (
            json!({"filename": "a.jpg", "content_type": "image/jpeg", "size": 0}),
            400,
            "empty_file",
        ),
        (
            json!({"filename": "a.jpg", "content_type": "image/jpeg"}),
            400,
            "bad_json",
        ),
    ];
    for (req, want_status, want_code) in cases {
        let (status, body) = stack
            .post_json("/api/images/upload", Some(&token), &req)
            .await?;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (want_status, Some(want_code)),
            "{req} -> {body}"
        );
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.len() > 10));
    }
    let (status, body) = stack
        .post_bytes("/api/images/upload", Some(&token), "image/png", Vec::new())
        .await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("empty_body")),
        "{body}"
    );
    let (status, body) = stack
        .post_bytes("/api/images/upload", Some(&token), "image/jpeg", png(8, 8))
        .await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("type_mismatch")),
        "{body}"
    );
    let (status, body) = stack
        .post_bytes(
            "/api/images/upload",
            Some(&token),
            "image/png",
            b"GIF89a not really".to_vec(),
        )
        .await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("type_mismatch")),
        "{body}"
    );
    assert_nothing_left(&stack, &sub, &token).await
}

#[tokio::test]
async fn another_user_gets_404_for_my_image() -> Result<()> {
    let stack = Stack::load().await?;
    let (_, alice) = stack.fresh_user().await?;
    let (_, bob) = stack.fresh_user().await?;
    let id = stack.upload(&alice, "image/jpeg", &jpeg(100, 100)).await?;
    for path in [
        format!("/api/images/{id}"),
        format!("/api/images/{id}/processing-status"),
    ] {
        assert_eq!(stack.get(&path, Some(&alice)).await?.0, 200, "{path}");
        let (status, body) = stack.get(&path, Some(&bob)).await?;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = stack
        .post_json(
            &format!("/api/images/{id}/retry-processing"),
            Some(&bob),
            &json!({}),
        )
        .await?;
    assert_eq!(status, 404);
    let (_, list) = stack.get("/api/images", Some(&bob)).await?;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0));
    let (_, list) = stack.get("/api/images", Some(&alice)).await?;
    assert_eq!(list["items"][0]["image_id"], id);
    Ok(())
}

/// Delivery (issue 21): derivatives are served with a year-long immutable `Cache-Control`, the
/// API hands out the same URL for the same file within a link window, and the same bytes
/// uploaded again answer with the existing image instead of a new one.
#[tokio::test]
async fn derivatives_are_cacheable_at_stable_urls_and_the_same_bytes_make_no_second_image(
) -> Result<()> {
    let stack = Stack::load().await?;
    let (_, token) = stack.fresh_user().await?;
    let photo = jpeg(640, 480);
    let digest = hex::encode(sha2::Sha256::digest(&photo));
    let ask = json!({"filename": "same.jpg", "content_type": "image/jpeg", "size": photo.len(), "sha256": digest});
    let (status, first) = stack
        .post_json("/api/images/upload", Some(&token), &ask)
        .await?;
    assert_eq!(status, 201, "{first}");
    let id = first["image_id"].as_str().unwrap().to_owned();
    assert_eq!(
        stack.put_presigned(&first["upload"], photo.clone()).await?,
        200
    );
    let done = stack
        .wait_status(&token, &id, Duration::from_secs(120), |b| {
            b["processing_status"] == "completed"
        })
        .await?;
    assert_eq!(done["processing_status"], "completed");

    let (_, a) = stack
        .get(&format!("/api/images/{id}"), Some(&token))
        .await?;
    let (_, b) = stack
        .get(&format!("/api/images/{id}"), Some(&token))
        .await?;
    let thumbs = a["thumbnails"].as_object().unwrap();
    assert!(!thumbs.is_empty(), "{a}");
    for (name, view) in thumbs {
        assert_eq!(
            view["url"], b["thumbnails"][name]["url"],
            "{name}: a new URL per call"
        );
        let got = stack
            .http()
            .get(view["url"].as_str().unwrap())
            .send()
            .await?;
        assert_eq!(got.status(), 200, "{name}");
        let cache = got
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            cache.contains("immutable") && cache.contains("max-age=31536000"),
            "{name}: cache-control {cache:?}"
        );
    }

    let (status, again) = stack
        .post_json("/api/images/upload", Some(&token), &ask)
        .await?;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate_of"], json!(id));
    assert_eq!(again["status"], "completed");
    let (_, list) = stack.get("/api/images", Some(&token)).await?;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    Ok(())
}
