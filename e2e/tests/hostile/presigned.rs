//! Presigned uploads misused: storage enforces what the server signed (exact key, type, size,
//! lifetime), the POST policy pins key and type, a file name never reaches a key, and an original
//! cannot be replaced after it was processed.

use std::time::Duration;

use anyhow::Result;
use safelight::aws::S3Store;
use safelight::ports::{ObjectStore, UploadConstraints};
use safelight::{ImageId, ObjectKey, OwnerId};
use safelight_e2e::Stack;
use serde_json::Value;
use testkit::jpeg;

use crate::{code, fixture, presign, s3_error, terminal, SETTLE};

/// Sends a presigned PUT with the signed headers, some replaced.
async fn put_with(
    stack: &Stack,
    url: &str,
    upload: &Value,
    overrides: &[(&str, String)],
    body: Vec<u8>,
) -> Result<(u16, String)> {
    let mut req = stack.http().put(url).body(body);
    for (k, v) in upload["headers"].as_object().unwrap() {
        let v = overrides
            .iter()
            .find(|(name, _)| name == k)
            .map_or_else(|| v.as_str().unwrap().to_owned(), |(_, v)| v.clone());
        req = req.header(k, v);
    }
    let resp = req.send().await?;
    Ok((resp.status().as_u16(), resp.text().await?))
}

/// Sends the POST form with some fields replaced.
async fn post_form(
    stack: &Stack,
    post: &Value,
    overrides: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, String)> {
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in post["fields"].as_object().unwrap() {
        let v = overrides
            .iter()
            .find(|(name, _)| name == k)
            .map_or_else(|| v.as_str().unwrap(), |(_, v)| v);
        form = form.text(k.clone(), v.to_owned());
    }
    form = form.part(
        "file",
        reqwest::multipart::Part::bytes(body).file_name("photo"),
    );
    let resp = stack
        .http()
        .post(post["url"].as_str().unwrap())
        .multipart(form)
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.text().await?))
}

fn assert_refused(
    what: &str,
    (status, xml): &(u16, String),
    want_code: &str,
    want_in_message: &str,
) {
    let (code, message) = s3_error(xml);
    assert_eq!(
        (*status, code.as_str()),
        (403, want_code),
        "{what}: storage answered {status} {xml}"
    );
    assert!(
        message.contains(want_in_message),
        "{what}: {message:?} does not name {want_in_message:?}"
    );
}

#[tokio::test]
async fn a_presigned_put_with_a_bigger_body_another_type_or_another_key_is_refused_and_stores_nothing(
) -> Result<()> {
    let stack = Stack::load().await?;
    let (sub, token) = stack.fresh_user().await?;
    let photo = jpeg(320, 240);
    let body = presign(&stack, &token, "a.jpg", "image/jpeg", photo.len()).await?;
    let upload = &body["upload"];
    let url = upload["url"].as_str().unwrap();
    let id = body["image_id"].as_str().unwrap();

    let mut bigger = photo.clone();
    bigger.extend_from_slice(&[0xff; 4096]);
    let len = bigger.len().to_string();
    let refused = put_with(&stack, url, upload, &[("content-length", len)], bigger).await?;
    assert_refused(
        "bigger body",
        &refused,
        "SignatureDoesNotMatch",
        "signature",
    );

    let png_type = put_with(
        &stack,
        url,
        upload,
        &[("content-type", "image/png".into())],
        photo.clone(),
    )
    .await?;
    assert_refused(
        "other type",
        &png_type,
        "SignatureDoesNotMatch",
        "signature",
    );

    // The same signature on another owner's key (path traversal in the URL included).
    for other in [
        url.replacen(&format!("/originals/{sub}/"), "/originals/victim/", 1),
        url.replacen(
            &format!("/originals/{sub}/{id}"),
            &format!("/originals/{sub}/../victim/{id}"),
            1,
        ),
        url.replacen(id, &ImageId::new().to_string(), 1),
    ] {
        assert_ne!(other, url);
        let moved = put_with(&stack, &other, upload, &[], photo.clone()).await?;
        assert!(
            moved.0 == 403 || moved.0 == 400,
            "another key with this signature: {} {}",
            moved.0,
            moved.1
        );
    }
    let mut keys = stack.keys(&format!("originals/{sub}/")).await?;
    keys.extend(stack.keys("originals/victim/").await?);
    assert!(keys.is_empty(), "a refused PUT stored {keys:?}");
    let (_, row) = stack
        .get(&format!("/api/images/{id}/processing-status"), Some(&token))
        .await?;
    assert_eq!(row["upload_state"], "awaiting_upload", "{row}");

    // Positive control: the honest request with the same URL is accepted.
    let honest = put_with(&stack, url, upload, &[], photo).await?;
    assert_eq!(honest.0, 200, "{}", honest.1);
    Ok(())
}

#[tokio::test]
async fn the_post_form_refuses_another_key_and_another_type() -> Result<()> {
    let stack = Stack::load().await?;
    let (sub, token) = stack.fresh_user().await?;
    let photo = jpeg(200, 200);
    let body = presign(&stack, &token, "a.jpg", "image/jpeg", photo.len()).await?;
    let post = &body["upload_post"];
    let victim_key = format!("originals/victim/{}", ImageId::new());
    let key_moved = post_form(&stack, post, &[("key", &victim_key)], photo.clone()).await?;
    assert_refused("POST another key", &key_moved, "AccessDenied", "$key");
    let type_changed = post_form(
        &stack,
        post,
        &[("Content-Type", "image/png")],
        photo.clone(),
    )
    .await?;
    assert_refused(
        "POST another type",
        &type_changed,
        "AccessDenied",
        "$Content-Type",
    );
    let mut bigger = photo.clone();
    bigger.extend_from_slice(&[0u8; 8192]);
    let too_big = post_form(&stack, post, &[], bigger).await?;
    assert!(
        (400..500).contains(&too_big.0),
        "a bigger body through the POST form: {} {}",
        too_big.0,
        too_big.1
    );
    assert!(stack.keys("originals/victim/").await?.is_empty());
    assert!(stack.keys(&format!("originals/{sub}/")).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn an_expired_presigned_put_is_refused_by_storage() -> Result<()> {
    let stack = Stack::load().await?;
    let (sub, token) = stack.fresh_user().await?;
    // The API's URLs live exactly the configured lifetime (900 s), never longer.
    let photo = jpeg(64, 64);
    let body = presign(&stack, &token, "a.jpg", "image/jpeg", photo.len()).await?;
    let url = body["upload"]["url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Expires=900"), "{url}");
    assert!(body["upload_post"]["fields"]["policy"].is_string());

    // The product's own presigning (the upload function's adapter) with a 1 s lifetime, used 3 s
    // later: the same code path, a lifetime a test can outwait.
    let store = S3Store::new(&stack.sdk, stack.var("SAFELIGHT_BUCKET")?);
    let owner: OwnerId = sub.parse()?;
    let key = ObjectKey::original(&owner, ImageId::new());
    let constraints = UploadConstraints {
        content_type: "image/jpeg".into(),
        content_length: photo.len() as u64,
        sha256_base64: None,
    };
    let short = store
        .presign_put(&key, &constraints, Duration::from_secs(1))
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut req = stack.http().put(&short.url).body(photo);
    for (k, v) in &short.headers {
        req = req.header(k, v);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let xml = resp.text().await?;
    assert_refused("expired", &(status, xml), "AccessDenied", "expired");
    assert!(stack.keys(&format!("originals/{sub}/")).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn file_names_with_paths_and_control_characters_never_reach_the_key() -> Result<()> {
    let stack = Stack::load().await?;
    let (sub, token) = stack.fresh_user().await?;
    let long = format!("{}.jpg", "x".repeat(5000));
    let cases: Vec<(&str, String)> = vec![
        (
            "../../originals/victim/01KB0000000000000000000000",
            "01KB0000000000000000000000".into(),
        ),
        ("..\\..\\windows\\evil.jpg", "evil.jpg".into()),
        ("/etc/passwd", "passwd".into()),
        ("a/b/c.jpg", "c.jpg".into()),
        ("x\u{0}y\r\nz.jpg", "xyz.jpg".into()),
        ("%2e%2e%2fvictim.jpg", "%2e%2e%2fvictim.jpg".into()),
        ("<script>alert(1)</script>.jpg", "script>.jpg".into()),
        (long.as_str(), "x".repeat(255)),
    ];
    for (raw, shown) in &cases {
        let body = presign(&stack, &token, raw, "image/jpeg", 100).await?;
        let id = body["image_id"].as_str().unwrap();
        let key = format!("originals/{sub}/{id}");
        let url = body["upload"]["url"].as_str().unwrap();
        let path = url.split('?').next().unwrap();
        assert!(path.ends_with(&format!("/{key}")), "{raw:?} -> {path}");
        assert_eq!(
            body["upload_post"]["fields"]["key"],
            key.as_str(),
            "{raw:?}"
        );
        let (status, view) = stack
            .get(&format!("/api/images/{id}"), Some(&token))
            .await?;
        assert_eq!(status, 200);
        assert_eq!(view["filename"], shown.as_str(), "{raw:?} is displayed as");
    }
    for raw in ["..", "a/..", "/", "", "\u{1}\u{2}"] {
        let (status, body) = stack.presign(&token, raw, "image/jpeg", 100).await?;
        assert_eq!(
            (status, code(&body)),
            (400, "bad_filename"),
            "{raw:?}: {body}"
        );
    }
    // The fast path's file name header: same cleaning, the key is still the server's.
    let resp = stack
        .http()
        .post(stack.api("/api/images/upload")?)
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .header("x-filename", "../../originals/victim/evil.jpg")
        .body(jpeg(32, 32))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 202);
    let body: Value = resp.json().await?;
    let id = body["image_id"].as_str().unwrap();
    let (_, view) = stack
        .get(&format!("/api/images/{id}"), Some(&token))
        .await?;
    assert_eq!(view["filename"], "evil.jpg");
    assert_eq!(
        stack.keys(&format!("originals/{sub}/")).await?,
        vec![format!("originals/{sub}/{id}")]
    );
    assert!(stack.keys("originals/victim/").await?.is_empty());
    Ok(())
}

/// What the product shows of an image: the original behind its GET URL and every derivative.
async fn shown(stack: &Stack, token: &str, id: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let (status, view) = stack.get(&format!("/api/images/{id}"), Some(token)).await?;
    assert_eq!(status, 200, "{view}");
    let mut out = Vec::new();
    let mut urls = vec![(
        "original".to_owned(),
        view["original_url"].as_str().unwrap_or_default().to_owned(),
    )];
    for group in ["thumbnails", "variants"] {
        for (name, d) in view[group].as_object().into_iter().flatten() {
            urls.push((
                name.clone(),
                d["url"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    for (name, url) in urls {
        let bytes = stack.http().get(&url).send().await?.bytes().await?.to_vec();
        out.push((name, bytes));
    }
    Ok(out)
}

#[tokio::test]
async fn a_second_put_to_a_processed_upload_is_refused_or_changes_nothing_shown() -> Result<()> {
    let stack = Stack::load().await?;
    let (_, token) = stack.fresh_user().await?;
    let first = jpeg(640, 480);
    let body = presign(&stack, &token, "a.jpg", "image/jpeg", first.len()).await?;
    let id = body["image_id"].as_str().unwrap();
    assert_eq!(
        stack.put_presigned(&body["upload"], first.clone()).await?,
        200
    );
    let done = stack.wait_status(&token, id, SETTLE, terminal).await?;
    assert_eq!(done["processing_status"], "completed", "{done}");
    let before = shown(&stack, &token, id).await?;
    assert_eq!(before[0].1, first);

    // Other bytes, same length and type: the signature allows them, write-once must not.
    let mut other = fixture("photo-1024x768.jpg");
    other.resize(first.len(), 0);
    let again = stack.put_presigned(&body["upload"], other).await?;
    tokio::time::sleep(Duration::from_secs(5)).await; // let a (wrong) reprocessing happen
    let after = shown(&stack, &token, id).await?;
    assert!(
        (400..500).contains(&again) || after == before,
        "the reused URL answered {again} and changed what the product shows"
    );
    let (_, row) = stack
        .get(&format!("/api/images/{id}/processing-status"), Some(&token))
        .await?;
    assert_eq!(row["processing_status"], "completed", "{row}");
    Ok(())
}

/// Two different pictures (landscape, portrait) padded to the same length: a second POST of the
/// form's exact size is allowed by the policy, so only write-once can tell them apart.
fn two_pictures_of_one_size() -> (Vec<u8>, Vec<u8>) {
    let (mut landscape, mut portrait) = (jpeg(640, 480), jpeg(480, 640));
    let len = landscape.len().max(portrait.len());
    // Bytes after a JPEG's end-of-image marker are ignored by decoders.
    landscape.resize(len, 0);
    portrait.resize(len, 0);
    (landscape, portrait)
}

fn is_landscape(bytes: &[u8]) -> bool {
    let img = image::load_from_memory(bytes).expect("decodes");
    img.width() > img.height()
}

/// Waits until the key's current object is `bytes` (the processors delete a later version).
async fn current_becomes(stack: &Stack, key: &str, bytes: &[u8]) -> Result<()> {
    let until = std::time::Instant::now() + SETTLE;
    while stack.object(key).await? != bytes {
        anyhow::ensure!(
            std::time::Instant::now() < until,
            "{key}: a later write is still the current version"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_second_post_of_the_same_size_after_processing_changes_nothing_shown() -> Result<()> {
    let stack = Stack::load().await?;
    let (_, token) = stack.fresh_user().await?;
    let (first, second) = two_pictures_of_one_size();
    let body = presign(&stack, &token, "a.jpg", "image/jpeg", first.len()).await?;
    let id = body["image_id"].as_str().unwrap();
    let key = body["upload_post"]["fields"]["key"].as_str().unwrap();
    let (status, text) = post_form(&stack, &body["upload_post"], &[], first.clone()).await?;
    assert!((200..300).contains(&status), "{status} {text}");
    let done = stack.wait_status(&token, id, SETTLE, terminal).await?;
    assert_eq!(done["processing_status"], "completed", "{done}");
    let before = shown(&stack, &token, id).await?;
    assert_eq!(before[0].1, first);

    // The same form again with another picture of the same size: the policy allows it (a POST
    // policy cannot carry If-None-Match), write-once must make it change nothing.
    let (status, text) = post_form(&stack, &body["upload_post"], &[], second).await?;
    assert!((200..300).contains(&status), "{status} {text}");
    current_becomes(&stack, key, &first).await?;
    let after = shown(&stack, &token, id).await?;
    assert!(
        after == before,
        "a second POST changed what the product shows"
    );
    let (_, row) = stack
        .get(&format!("/api/images/{id}/processing-status"), Some(&token))
        .await?;
    assert_eq!(row["processing_status"], "completed", "{row}");
    assert_eq!(
        row["updated_at"], done["updated_at"],
        "the row was not touched: {row}"
    );
    Ok(())
}

#[tokio::test]
async fn a_second_post_of_the_same_size_while_processing_leaves_one_picture_shown() -> Result<()> {
    let stack = Stack::load().await?;
    let (_, token) = stack.fresh_user().await?;
    let (first, second) = two_pictures_of_one_size();
    let body = presign(&stack, &token, "a.jpg", "image/jpeg", first.len()).await?;
    let id = body["image_id"].as_str().unwrap();
    let key = body["upload_post"]["fields"]["key"].as_str().unwrap();
    for picture in [first.clone(), second.clone()] {
        let (status, text) = post_form(&stack, &body["upload_post"], &[], picture).await?;
        assert!((200..300).contains(&status), "{status} {text}");
    }
    let done = stack.wait_status(&token, id, SETTLE, terminal).await?;
    assert_eq!(done["processing_status"], "completed", "{done}");
    let shown_first = shown(&stack, &token, id).await?;
    // Whichever write processing pinned, the original shown and every derivative are that
    // picture, and it stays the key's current version.
    let original = &shown_first[0].1;
    assert!(
        original == &first || original == &second,
        "the original shown is neither upload"
    );
    let landscape = is_landscape(original);
    for (name, bytes) in &shown_first[1..] {
        assert_eq!(
            is_landscape(bytes),
            landscape,
            "derivative {name} is not of the original shown"
        );
    }
    current_becomes(&stack, key, original).await?;
    tokio::time::sleep(Duration::from_secs(3)).await; // let a (wrong) reprocessing happen
    assert!(
        shown(&stack, &token, id).await? == shown_first,
        "what the product shows changed after processing"
    );
    Ok(())
}

#[tokio::test]
async fn a_smaller_file_through_the_post_form_is_refused_or_never_completes_as_the_declared_upload(
) -> Result<()> {
    let stack = Stack::load().await?;
    let (_, token) = stack.fresh_user().await?;
    let declared = jpeg(800, 600);
    let smaller = jpeg(100, 80);
    assert!(smaller.len() < declared.len());
    let body = presign(&stack, &token, "a.jpg", "image/jpeg", declared.len()).await?;
    let id = body["image_id"].as_str().unwrap();
    let (status, text) = post_form(&stack, &body["upload_post"], &[], smaller).await?;
    if (400..500).contains(&status) {
        let (_, row) = stack
            .get(&format!("/api/images/{id}/processing-status"), Some(&token))
            .await?;
        assert_eq!(row["upload_state"], "awaiting_upload", "{row}");
        return Ok(());
    }
    assert!((200..300).contains(&status), "{status} {text}");
    let row = stack.wait_status(&token, id, SETTLE, terminal).await?;
    assert_eq!(
        row["processing_status"], "failed",
        "a body of another size completed: {row}"
    );
    assert_eq!(row["error_kind"], "rejected", "{row}");
    Ok(())
}
