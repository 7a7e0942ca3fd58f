//! Recovery through the deployed local stack under its enforced IAM: the owner's retry after a
//! transient fault that outlasted every receive, after a permanent failure, and concurrent retries.
//! The faults are injected into the deployed thumbnail function (`SAFELIGHT_FAULTS`, scoped to
//! one owner's originals) and lifted again; changing a function's configuration recycles its
//! processes, so the tests of this suite take turns.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use anyhow::Result;
use safelight_e2e::Stack;
use serde_json::Value;
use testkit::jpeg;
use testkit::terminal;
use tokio::sync::Mutex;

const SETTLE: Duration = Duration::from_secs(120);
const THUMBNAIL_FN: &str = "SAFELIGHT_THUMBNAIL_FUNCTION";

/// One test at a time: a configuration change kills the function's in-flight invocations.
static TURN: Mutex<()> = Mutex::const_new(());

async fn user(stack: &Stack, tag: &str) -> Result<(String, String)> {
    let sub = format!("t-{tag}-{}", ulid::Ulid::new().to_string().to_lowercase());
    let token = stack.token(&format!("sub={sub}")).await?;
    Ok((sub, token))
}

async fn retry(stack: &Stack, token: &str, id: &str) -> Result<(u16, Value)> {
    stack
        .post_json(
            &format!("/api/images/{id}/retry-processing"),
            Some(token),
            &serde_json::json!({}),
        )
        .await
}

#[tokio::test]
async fn a_refusal_outlasting_three_receives_fails_the_image_and_the_owners_retry_completes_it_once_lifted(
) -> Result<()> {
    let _turn = TURN.lock().await;
    let stack = Stack::load().await?;
    let (sub, token) = user(&stack, "flaky").await?;
    stack
        .set_faults(THUMBNAIL_FN, &format!("s3_get@originals/{sub}/:1:denied"))
        .await?;
    let outcome = async {
        let id = stack.upload(&token, "image/jpeg", &jpeg(1200, 800)).await?;
        let failed = stack.wait_status(&token, &id, SETTLE, terminal).await?;
        assert_eq!(failed["processing_status"], "failed", "{failed}");
        assert_eq!(failed["thumbnail_status"], "failed");
        assert_eq!(
            failed["variant_status"], "completed",
            "only thumbnails were faulted"
        );
        assert_eq!(failed["error_kind"], "transient");
        let reason = failed["processing_error"].as_str().unwrap_or_default();
        assert!(reason.starts_with("gave up after 3 attempts"), "{reason}");
        // The failed last receive is made visible at once, so SQS moves it to the DLQ on the
        // next poll instead of after the queue's 180 s visibility timeout.
        let failed_at = std::time::Instant::now();
        // The thumbnails DLQ, visible or being peeked by the sweeper.
        while stack.queue_depth("SAFELIGHT_THUMBNAILS_DLQ_URL").await? == 0 {
            assert!(
                failed_at.elapsed() < Duration::from_secs(90),
                "the message is still waiting out the visibility timeout"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        println!(
            "dead-lettered {:.1} s after the row was marked failed",
            failed_at.elapsed().as_secs_f64()
        );

        stack.set_faults(THUMBNAIL_FN, "").await?;
        let (status, body) = retry(&stack, &token, &id).await?;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["requeued"], serde_json::json!(["thumbnail"]));
        let done = stack
            .wait_status(&token, &id, SETTLE, |v| {
                v["processing_status"] == "completed" || v["thumbnail_status"] == "failed"
            })
            .await?;
        assert_eq!(done["processing_status"], "completed", "{done}");
        assert!(done["processing_error"].is_null(), "{done}");
        for (name, edge) in [("150.jpg", 150), ("300.jpg", 300), ("600.jpg", 600)] {
            let key = done["thumbnails"][name]["key"].as_str().unwrap().to_owned();
            let img = image::load_from_memory(&stack.object(&key).await?)?;
            assert_eq!((img.width(), img.height()), (edge, edge * 2 / 3), "{name}");
        }
        for name in ["1280.jpg", "1280.webp", "2048.jpg", "2048.webp"] {
            assert!(done["variants"][name]["key"].is_string(), "{name}: {done}");
        }
        anyhow::Ok(())
    }
    .await;
    stack.set_faults(THUMBNAIL_FN, "").await?;
    outcome
}

/// A JPEG header and the start of its scan, nothing more: both stages fail it for good.
fn corrupt_jpeg() -> Vec<u8> {
    let mut bytes = jpeg(400, 300);
    bytes.truncate(300);
    bytes
}

#[tokio::test]
async fn a_permanent_failure_retried_is_accepted_processed_again_and_fails_again_with_its_reason(
) -> Result<()> {
    let _turn = TURN.lock().await;
    let stack = Stack::load().await?;
    let (_, token) = user(&stack, "corrupt").await?;
    let id = stack.upload(&token, "image/jpeg", &corrupt_jpeg()).await?;
    let first = stack.wait_status(&token, &id, SETTLE, terminal).await?;
    assert_eq!(first["processing_status"], "failed", "{first}");
    assert_eq!(first["error_kind"], "permanent");
    let attempts = first["processing_attempts"].as_u64().unwrap();

    let (status, body) = retry(&stack, &token, &id).await?;
    assert_eq!(status, 202, "{body}");
    let again = stack
        .wait_status(&token, &id, SETTLE, |v| {
            terminal(v) && v["processing_attempts"].as_u64() == Some(attempts + 2)
        })
        .await?;
    assert_eq!(again["processing_status"], "failed", "{again}");
    assert_eq!(again["error_kind"], "permanent");
    assert_eq!(again["processing_error"], first["processing_error"]);
    Ok(())
}

#[tokio::test]
async fn concurrent_retries_of_one_image_enqueue_it_once() -> Result<()> {
    let _turn = TURN.lock().await;
    let stack = Stack::load().await?;
    let (_, token) = user(&stack, "twice").await?;
    let id = stack.upload(&token, "image/jpeg", &corrupt_jpeg()).await?;
    let first = stack.wait_status(&token, &id, SETTLE, terminal).await?;
    assert_eq!(first["processing_status"], "failed", "{first}");
    let attempts = first["processing_attempts"].as_u64().unwrap();

    // The processors are paused while the calls race: otherwise a quick re-failure (this file
    // is corrupt) makes the image retryable again, and a call that arrives late (a cold start
    // on a loaded machine) is rightly accepted a second time.
    for f in ["thumbnail", "variant"] {
        stack.stackctl(&["event-source", f, "off"]).await?;
    }
    let raced = async {
        let answers = futures::future::join_all((0..6).map(|_| retry(&stack, &token, &id))).await;
        answers
            .into_iter()
            .map(|a| a.map(|(s, _)| s))
            .collect::<Result<Vec<u16>>>()
    }
    .await;
    for f in ["thumbnail", "variant"] {
        stack.stackctl(&["event-source", f, "on"]).await?;
    }
    let codes = raced?;
    assert_eq!(
        codes.iter().filter(|&&c| c == 202).count(),
        1,
        "exactly one retry is accepted: {codes:?}"
    );
    assert!(codes.iter().all(|&c| c == 202 || c == 409), "{codes:?}");

    let settled = stack
        .wait_status(&token, &id, SETTLE, |v| {
            terminal(v) && v["processing_attempts"].as_u64() >= Some(attempts + 2)
        })
        .await?;
    // Give a second enqueue, if there were one, time to show.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (_, after) = stack
        .get(&format!("/api/images/{id}/processing-status"), Some(&token))
        .await?;
    assert_eq!(
        after["processing_attempts"].as_u64(),
        Some(attempts + 2),
        "one attempt per stage, not one per call: {settled}"
    );
    Ok(())
}

// ------------------------------------------------------------------------------ the sweeper

/// The images table through the product's own adapter.
fn images_table(stack: &Stack) -> Result<safelight::aws::DynamoImages> {
    Ok(safelight::aws::DynamoImages::new(
        &stack.sdk,
        stack.var("SAFELIGHT_IMAGES_TABLE")?,
    ))
}

/// A row as the upload function makes it for `owner`, written `age_secs` ago.
fn new_row(
    owner: &str,
    bytes: &[u8],
    upload_state: safelight::UploadState,
    age_secs: i64,
) -> safelight::ImageRecord {
    testkit::image(owner)
        .filename("held.jpg")
        .size(bytes.len() as u64)
        .state(upload_state)
        .age_secs(age_secs)
        .build()
}

async fn put_original(stack: &Stack, row: &safelight::ImageRecord, bytes: Vec<u8>) -> Result<()> {
    stack
        .s3()
        .put_object()
        .bucket(stack.var("SAFELIGHT_BUCKET")?)
        .key(row.original_key.as_str())
        .content_type("image/jpeg")
        .body(bytes.into())
        .send()
        .await?;
    Ok(())
}

async fn sweep(stack: &Stack) -> Result<Value> {
    let answer = stack
        .stackctl(&["invoke", stack.var("SAFELIGHT_SWEEPER_FUNCTION")?])
        .await?;
    Ok(serde_json::from_str(answer.trim())?)
}

/// Both processors' event source mappings on or off (a backlog: messages wait in the queues).
async fn processors(stack: &Stack, on: &str) -> Result<()> {
    for f in ["thumbnail", "variant"] {
        stack.stackctl(&["event-source", f, on]).await?;
    }
    Ok(())
}

async fn wait_depth(stack: &Stack, queue_var: &str, at_least: u64) -> Result<()> {
    let since = std::time::Instant::now();
    while stack.queue_depth(queue_var).await? < at_least {
        anyhow::ensure!(
            since.elapsed() < Duration::from_secs(60),
            "{queue_var}: no message"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

#[tokio::test]
async fn an_upload_held_back_past_its_link_lifetime_is_found_stored_by_the_sweeper_and_completes(
) -> Result<()> {
    use safelight::ports::ImageRepository;
    let _turn = TURN.lock().await;
    let stack = Stack::load().await?;
    let (sub, token) = user(&stack, "held").await?;
    let images = images_table(&stack)?;
    processors(&stack, "off").await?;
    let outcome = async {
        // Uploaded through its presigned link an hour ago; its processing has not started (the
        // processors are held back, as an open breaker or a backlog would).
        let bytes = jpeg(600, 400);
        let row = new_row(&sub, &bytes, safelight::UploadState::AwaitingUpload, 3600);
        images.create(&row).await?;
        put_original(&stack, &row, bytes).await?;
        wait_depth(&stack, "SAFELIGHT_THUMBNAILS_QUEUE_URL", 1).await?;

        // (The scheduled sweep may get there first: the row is what counts.)
        let report = sweep(&stack).await?;
        let kept = images.get(row.image_id).await?.expect("row");
        assert_eq!(kept.processing_error, None, "{report}");
        assert_eq!(kept.upload_state, safelight::UploadState::Stored);
        assert_eq!(kept.processing_status, safelight::Status::Pending);

        processors(&stack, "on").await?;
        let id = row.image_id.to_string();
        let done = stack.wait_status(&token, &id, SETTLE, terminal).await?;
        assert_eq!(done["processing_status"], "completed", "{done}");
        anyhow::Ok(())
    }
    .await;
    processors(&stack, "on").await?;
    outcome
}

#[tokio::test]
async fn a_stored_image_whose_messages_were_lost_is_reenqueued_by_the_sweeper_and_completes(
) -> Result<()> {
    use safelight::ports::ImageRepository;
    let _turn = TURN.lock().await;
    let stack = Stack::load().await?;
    let (sub, token) = user(&stack, "lost").await?;
    let images = images_table(&stack)?;
    processors(&stack, "off").await?;
    let outcome = async {
        // Stored two hours ago; both of its messages are gone (purged here; on AWS: the
        // EventBridge target's DLQ, a failed restore after a retry, the queues' retention).
        let bytes = jpeg(600, 400);
        let row = new_row(&sub, &bytes, safelight::UploadState::Stored, 7200);
        images.create(&row).await?;
        put_original(&stack, &row, bytes).await?;
        for q in [
            "SAFELIGHT_THUMBNAILS_QUEUE_URL",
            "SAFELIGHT_VARIANTS_QUEUE_URL",
        ] {
            wait_depth(&stack, q, 1).await?;
            stack
                .sqs()
                .purge_queue()
                .queue_url(stack.var(q)?)
                .send()
                .await?;
        }
        processors(&stack, "on").await?;

        // (The scheduled sweep may get there first: the row is what counts.)
        let report = sweep(&stack).await?;
        let requeued = images.get(row.image_id).await?.expect("row");
        assert_eq!(requeued.sweep_requeues, 1, "{report}");
        let id = row.image_id.to_string();
        let done = stack.wait_status(&token, &id, SETTLE, terminal).await?;
        assert_eq!(done["processing_status"], "completed", "{done}");
        anyhow::Ok(())
    }
    .await;
    processors(&stack, "on").await?;
    outcome
}
