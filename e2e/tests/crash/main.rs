//! A process crash through the deployed local stack: the thumbnail function aborts (an injected
//! crash point, `abort@originals/{owner}/`) on one owner's image in the middle of its batch.
//! Lambda's poller gets an invocation error and the whole batch comes back after the queue's
//! visibility timeout (180 s). A crash is not necessarily the image's fault (a batch-mate's
//! out-of-memory, a host going away), so the crashed image runs once more, alone (the rest of its
//! batch is re-sent as fresh copies and completes); it crashes again, comes back after another
//! visibility timeout and fails as "processing crashed twice". No row stays `processing`,
//! nothing reaches a DLQ. Its own suite: changing the function's configuration recycles its
//! processes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::{Duration, Instant};

use anyhow::Result;
use safelight_e2e::Stack;
use testkit::jpeg;
use testkit::terminal;

const THUMBNAIL_FN: &str = "SAFELIGHT_THUMBNAIL_FUNCTION";

async fn held(stack: &Stack, queue_var: &str) -> Result<u64> {
    stack.queue_depth(queue_var).await
}

#[tokio::test]
async fn an_image_that_crashes_its_process_twice_fails_and_costs_the_rest_of_its_batch_nothing(
) -> Result<()> {
    let stack = Stack::load().await?;
    let crash_sub = format!("t-crash-{}", ulid::Ulid::new().to_string().to_lowercase());
    let crash_token = stack.token(&format!("sub={crash_sub}")).await?;
    let (_, token) = stack.fresh_user().await?;
    stack
        .set_faults(THUMBNAIL_FN, &format!("abort@originals/{crash_sub}/:1"))
        .await?;
    let started = Instant::now();
    let outcome = async {
        // Nine innocent images and the one that kills the process, uploaded together so the
        // poller batches them.
        let photo = jpeg(640, 480);
        let mut uploads: Vec<_> = (0..9)
            .map(|_| stack.upload(&token, "image/jpeg", &photo))
            .collect();
        uploads.insert(4, stack.upload(&crash_token, "image/jpeg", &photo));
        let ids: Vec<String> = futures::future::join_all(uploads)
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        let crash_id = ids[4].clone();

        // Two visibility timeouts (180 s each) and the processing around them.
        let settle = Duration::from_secs(600);
        let crashed = stack
            .wait_status(&crash_token, &crash_id, settle, terminal)
            .await?;
        assert_eq!(crashed["processing_status"], "failed", "{crashed}");
        assert_eq!(crashed["thumbnail_status"], "failed");
        assert_eq!(crashed["error_kind"], "permanent");
        let reason = crashed["processing_error"].as_str().unwrap_or_default();
        assert!(reason.starts_with("processing crashed twice"), "{reason}");
        for (i, id) in ids.iter().enumerate().filter(|(i, _)| *i != 4) {
            let s = stack.wait_status(&token, id, settle, terminal).await?;
            assert_eq!(s["processing_status"], "completed", "innocent image {i}: {s}");
        }
        for queue in ["SAFELIGHT_THUMBNAILS_DLQ_URL", "SAFELIGHT_VARIANTS_DLQ_URL"] {
            assert_eq!(held(&stack, queue).await?, 0, "{queue}: nothing dead-lettered");
        }
        println!(
            "crash run: 1 crashed + 9 innocent images terminal after {:.0} s; 0 rows processing, 0 dead letters",
            started.elapsed().as_secs_f64()
        );
        anyhow::Ok(())
    }
    .await;
    stack.set_faults(THUMBNAIL_FN, "").await?;
    outcome
}
