//! Operations through the deployed local stack: the admin routes (access, the queue view against
//! the rows, breaker reset), retry-all-failed after a permanent fault, and the migration of a
//! bucket of existing originals through the deployed `backfill` function.
//!
//! The tests change shared state (function configuration, queue settings, event sources, the
//! breaker, global counts), so they take turns: each holds [`turn`] for its whole run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use safelight::aws::dynamodb::item_from_record;
use safelight::{ImageId, ImageRecord, ObjectKey, OwnerId, Stage, StageResult, Timestamp};
use safelight_e2e::Stack;
use serde_json::{json, Value};
use testkit::jpeg;
use testkit::terminal;
use tokio::sync::{Mutex, MutexGuard};

const SETTLE: Duration = Duration::from_secs(90);

async fn turn() -> MutexGuard<'static, ()> {
    static TURN: OnceLock<Mutex<()>> = OnceLock::new();
    TURN.get_or_init(|| Mutex::new(())).lock().await
}

/// `infra/local/stackctl.py` on this stack (set-env, event-source, invoke, …); its stdout.
async fn stackctl(stack: &Stack, args: &[&str]) -> Result<String> {
    stack.stackctl(args).await
}

/// Invokes the deployed backfill function with a sample event.
async fn backfill(stack: &Stack, event: &str) -> Result<Value> {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(event);
    let out = stackctl(stack, &["invoke", "backfill", &file.to_string_lossy()]).await?;
    Ok(serde_json::from_str(out.trim())?)
}

/// The images table's rows by `processing_status`, counted from a scan (the check the view's
/// index queries must agree with).
async fn scan_counts(stack: &Stack) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    let mut start = None;
    loop {
        let out = stack
            .dynamodb()
            .scan()
            .table_name(stack.var("SAFELIGHT_IMAGES_TABLE")?)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        for item in out.items() {
            if let Some(AttributeValue::S(s)) = item.get("processing_status") {
                *counts.entry(s.clone()).or_insert(0) += 1;
            }
        }
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(counts),
        }
    }
}

async fn depth(stack: &Stack, queue_var: &str) -> Result<u64> {
    stack.queue_depth(queue_var).await
}

async fn wait_for(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Result<bool>,
) -> Result<()> {
    let start = Instant::now();
    loop {
        if check().await? {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until no processing work is queued or in flight.
async fn quiet(stack: &Stack) -> Result<()> {
    wait_for("empty processing queues", SETTLE, async || {
        Ok(depth(stack, "SAFELIGHT_THUMBNAILS_QUEUE_URL").await?
            + depth(stack, "SAFELIGHT_VARIANTS_QUEUE_URL").await?
            == 0)
    })
    .await
}

async fn row(stack: &Stack, id: &str) -> Result<HashMap<String, AttributeValue>> {
    stack
        .dynamodb()
        .get_item()
        .table_name(stack.var("SAFELIGHT_IMAGES_TABLE")?)
        .key("image_id", AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await?
        .item
        .context("row missing")
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

// ------------------------------------------------------------------------------ access

#[tokio::test]
async fn a_token_without_the_admin_scope_gets_403_on_every_admin_route_and_no_token_gets_401(
) -> Result<()> {
    let _turn = turn().await;
    let stack = Stack::load().await?;
    let (sub, user) = stack.fresh_user().await?;
    // Groups grant nothing, and a scope is compared whole.
    let admin_group = stack.token(&format!("sub={sub}&groups=admin")).await?;
    let site_admin = stack
        .token(&format!("sub={sub}&groups=Site%20admin"))
        .await?;
    let look_alike = stack
        .token(&format!("sub={sub}&scope=x,safelight/admin"))
        .await?;
    let routes: [(&str, &str); 4] = [
        ("GET", "/api/admin/processing-queue"),
        ("POST", "/api/admin/retry-all-failed"),
        ("POST", "/api/admin/circuits/thumbnail/reset"),
        ("POST", "/api/admin/circuits/variant/reset"),
    ];
    for (method, path) in routes {
        for token in [
            Some(user.as_str()),
            Some(admin_group.as_str()),
            Some(site_admin.as_str()),
            Some(look_alike.as_str()),
            None,
        ] {
            let (status, body) = if method == "GET" {
                stack.get(path, token).await?
            } else {
                stack
                    .post_json(path, token, &json!({"dry_run": true}))
                    .await?
            };
            let want = if token.is_some() { 403 } else { 401 };
            assert_eq!(status, want, "{method} {path}: {body}");
            if token.is_some() {
                // API Gateway's AuthorizationScopes refusal ({"message": "Forbidden"}), before
                // the function; the function's own check would answer in the API's contract.
                assert!(
                    body["message"] == "Forbidden" || body["error"]["code"] == "forbidden",
                    "{body}"
                );
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------ the view

#[tokio::test]
async fn the_queue_view_counts_equal_the_rows_statuses_after_a_mixed_run() -> Result<()> {
    let _turn = turn().await;
    let stack = Stack::load().await?;
    let admin = stack.token("user=admin").await?;
    let (owner, token) = stack.fresh_user().await?;
    let mut done = Vec::new();
    for i in 0..4 {
        let mut bytes = jpeg(480, 320);
        if i == 3 {
            bytes.truncate(300);
        }
        done.push(stack.upload(&token, "image/jpeg", &bytes).await?);
    }
    // Two uploads asked for and never sent: pending rows.
    for _ in 0..2 {
        let (status, _) = stack
            .presign(&token, "later.jpg", "image/jpeg", 1234)
            .await?;
        assert_eq!(status, 201);
    }
    for id in &done {
        stack.wait_status(&token, id, SETTLE, terminal).await?;
    }
    quiet(&stack).await?;

    let rows = scan_counts(&stack).await?;
    let (status, view) = stack
        .get("/api/admin/processing-queue", Some(&admin))
        .await?;
    assert_eq!(status, 200, "{view}");
    for s in ["pending", "processing", "completed", "failed"] {
        assert_eq!(
            view["counts"][s].as_u64(),
            Some(rows.get(s).copied().unwrap_or(0)),
            "{s}: view {} vs rows {rows:?}",
            view["counts"]
        );
    }
    assert!(view["counts"]["completed"].as_u64() >= Some(3));
    assert!(view["counts"]["pending"].as_u64() >= Some(2));
    let corrupt = &done[3];
    let failure = view["recent_failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["image_id"] == corrupt.as_str())
        .unwrap_or_else(|| panic!("{corrupt} not among the failures: {view}"));
    assert_eq!(failure["owner_id"], owner.as_str());
    assert_eq!(failure["error_kind"], "permanent");
    assert!(failure["error"].as_str().unwrap().len() > 10);
    let chart = view["throughput"].as_array().unwrap();
    assert_eq!(chart.len(), 60);
    let processed: u64 = chart.iter().filter_map(|m| m["processed"].as_u64()).sum();
    let failed: u64 = chart.iter().filter_map(|m| m["failed"].as_u64()).sum();
    assert!(processed >= 3 && failed >= 1, "{chart:?}");
    for q in view["queues"].as_array().unwrap() {
        assert_eq!(q["visible"], 0, "{q}");
    }
    Ok(())
}

#[tokio::test]
async fn a_forced_open_breaker_shows_as_open_and_the_reset_closes_it() -> Result<()> {
    let _turn = turn().await;
    let stack = Stack::load().await?;
    let admin = stack.token("user=admin").await?;
    let now = Timestamp::now();
    let failures: Vec<AttributeValue> = (0..5)
        .map(|i| AttributeValue::N((now.unix_millis() - i * 1000).to_string()))
        .collect();
    stack
        .dynamodb()
        .put_item()
        .table_name(stack.var("SAFELIGHT_CONTROL_TABLE")?)
        .item("pk", AttributeValue::S("circuit#thumbnail".into()))
        .item("version", AttributeValue::N("41".into()))
        .item("state", AttributeValue::S("open".into()))
        .item("failures", AttributeValue::L(failures))
        .item("opened_at", AttributeValue::S(now.to_string()))
        .item("until", AttributeValue::S(now.plus_secs(600).to_string()))
        .item("times_opened", AttributeValue::N("1".into()))
        .send()
        .await?;

    let (_, view) = stack
        .get("/api/admin/processing-queue", Some(&admin))
        .await?;
    let c = &view["circuits"][0];
    assert_eq!(
        (&c["stage"], &c["state"]),
        (&json!("thumbnail"), &json!("open")),
        "{c}"
    );
    assert_eq!(c["failures_in_window"], 5);
    assert!(c["next_probe_in_secs"].as_u64() > Some(500), "{c}");

    let (status, reset) = stack
        .post_json(
            "/api/admin/circuits/thumbnail/reset",
            Some(&admin),
            &json!({}),
        )
        .await?;
    assert_eq!(status, 200, "{reset}");
    assert_eq!(reset["state"], "closed");
    assert_eq!(reset["previous_state"], "open");
    assert_eq!(reset["reset_by"], "admin");

    let (_, view) = stack
        .get("/api/admin/processing-queue", Some(&admin))
        .await?;
    let c = &view["circuits"][0];
    assert_eq!(c["state"], "closed", "{c}");
    assert_eq!(c["reset_by"], "admin");
    assert_eq!(c["next_probe_in_secs"], Value::Null);
    let stored = stack
        .dynamodb()
        .get_item()
        .table_name(stack.var("SAFELIGHT_CONTROL_TABLE")?)
        .key("pk", AttributeValue::S("circuit#thumbnail".into()))
        .consistent_read(true)
        .send()
        .await?
        .item
        .unwrap();
    assert_eq!(text(&stored, "state"), "closed");
    assert_eq!(text(&stored, "reset_by"), "admin", "recorded on the row");

    // Work flows again at once.
    let (_, token) = stack.fresh_user().await?;
    let id = stack.upload(&token, "image/jpeg", &jpeg(300, 200)).await?;
    let s = stack.wait_status(&token, &id, SETTLE, terminal).await?;
    assert_eq!(s["processing_status"], "completed", "{s}");
    Ok(())
}

// ------------------------------------------------------------------------------ retry all

/// Follows a retry-all-failed run to its end; the sums of its calls.
async fn retry_all(stack: &Stack, admin: &str) -> Result<(u64, u64, u64)> {
    let mut sums = (0, 0, 0);
    let mut cursor = Value::Null;
    for _ in 0..100 {
        let body = if cursor.is_null() {
            json!({})
        } else {
            json!({"cursor": cursor})
        };
        let (status, v) = stack
            .post_json("/api/admin/retry-all-failed", Some(admin), &body)
            .await?;
        if status != 200 {
            bail!("retry-all-failed answered {status}: {v}");
        }
        sums.0 += v["images_requeued"].as_u64().unwrap_or(0);
        sums.1 += v["messages_redriven"].as_u64().unwrap_or(0);
        sums.2 += v["duplicates_removed"].as_u64().unwrap_or(0);
        if v["done"] == true {
            return Ok(sums);
        }
        cursor = v["next_cursor"].clone();
    }
    bail!("retry-all-failed did not finish in 100 calls")
}

async fn set_visibility(stack: &Stack, queue_var: &str, secs: u32) -> Result<()> {
    stack
        .sqs()
        .set_queue_attributes()
        .queue_url(stack.var(queue_var)?)
        .attributes(QueueAttributeName::VisibilityTimeout, secs.to_string())
        .send()
        .await?;
    Ok(())
}

#[tokio::test]
async fn failed_images_and_dead_letters_of_a_permanent_fault_come_back_and_complete_once_it_is_lifted(
) -> Result<()> {
    let _turn = turn().await;
    let stack = Stack::load().await?;
    let admin = stack.token("user=admin").await?;
    let (_, token) = stack.fresh_user().await?;
    quiet(&stack).await?;
    // The template's 180 s visibility would hold each message that long after its last receive
    // before SQS moves it to the DLQ; a short one lets this test see the DLQ in seconds.
    set_visibility(&stack, "SAFELIGHT_THUMBNAILS_QUEUE_URL", 4).await?;
    // Access denied on every read: a refusal is not counted by the breaker and not deferred, so
    // every image uses up its receives. The high threshold keeps any stray outage failure of
    // another stage from opening the circuit during the test.
    let threshold = stackctl(
        &stack,
        &["set-env", "thumbnail", "BREAKER_THRESHOLD", "1000"],
    )
    .await?;
    stackctl(
        &stack,
        &[
            "set-env",
            "thumbnail",
            "SAFELIGHT_FAULTS",
            "s3_get:1:denied",
        ],
    )
    .await?;
    let result = async {
        let mut ids = Vec::new();
        for _ in 0..4 {
            ids.push(stack.upload(&token, "image/jpeg", &jpeg(400, 300)).await?);
        }
        for id in &ids {
            let s = stack.wait_status(&token, id, SETTLE, terminal).await?;
            assert_eq!(s["processing_status"], "failed", "{s}");
            assert_eq!(s["thumbnail_status"], "failed");
            assert_eq!(s["variant_status"], "completed");
        }
        wait_for("4 dead letters", SETTLE, async || {
            Ok(depth(&stack, "SAFELIGHT_THUMBNAILS_DLQ_URL").await? >= 4)
        })
        .await?;
        let dead = depth(&stack, "SAFELIGHT_THUMBNAILS_DLQ_URL").await?
            + depth(&stack, "SAFELIGHT_VARIANTS_DLQ_URL").await?;
        let failed = scan_counts(&stack)
            .await?
            .get("failed")
            .copied()
            .unwrap_or(0);

        // A dry run reports and changes nothing.
        let before = scan_counts(&stack).await?;
        let (status, dry) = stack
            .post_json(
                "/api/admin/retry-all-failed",
                Some(&admin),
                &json!({"dry_run": true}),
            )
            .await?;
        assert_eq!(status, 200, "{dry}");
        assert_eq!(dry["images_requeued"].as_u64(), Some(failed), "{dry}");
        assert_eq!(dry["messages_redriven"].as_u64(), Some(dead), "{dry}");
        assert_eq!(scan_counts(&stack).await?, before);
        assert_eq!(
            depth(&stack, "SAFELIGHT_THUMBNAILS_DLQ_URL").await?
                + depth(&stack, "SAFELIGHT_VARIANTS_DLQ_URL").await?,
            dead
        );
        for id in &ids {
            assert_eq!(text(&row(&stack, id).await?, "processing_status"), "failed");
        }

        // The cause is lifted; two operators press "Retry all failed" at once.
        stackctl(&stack, &["set-env", "thumbnail", "SAFELIGHT_FAULTS", ""]).await?;
        stackctl(
            &stack,
            &[
                "set-env",
                "thumbnail",
                "BREAKER_THRESHOLD",
                threshold.trim(),
            ],
        )
        .await?;
        set_visibility(&stack, "SAFELIGHT_THUMBNAILS_QUEUE_URL", 180).await?;
        let (a, b) = tokio::join!(retry_all(&stack, &admin), retry_all(&stack, &admin));
        let (a, b) = (a?, b?);
        assert_eq!(
            a.0 + b.0,
            failed,
            "each failed image re-enqueued once: {a:?} {b:?}"
        );
        for id in &ids {
            let s = stack.wait_status(&token, id, SETTLE, terminal).await?;
            assert_eq!(s["processing_status"], "completed", "{s}");
            assert_eq!(s["thumbnail_status"], "completed");
            assert!(s["thumbnails"]["150.jpg"]["key"].is_string(), "{s}");
        }
        // Every dead letter was brought back or, if the sweeper's peek hid it during the run, is
        // found done by a later run (the sweeper peeks, never deletes).
        let mut later = (0, 0, 0);
        wait_for("empty DLQs", SETTLE, async || {
            let r = retry_all(&stack, &admin).await?;
            later = (later.0 + r.0, later.1 + r.1, later.2 + r.2);
            Ok(depth(&stack, "SAFELIGHT_THUMBNAILS_DLQ_URL").await?
                + depth(&stack, "SAFELIGHT_VARIANTS_DLQ_URL").await?
                == 0)
        })
        .await?;
        assert_eq!(
            a.1 + b.1 + a.2 + b.2 + later.1 + later.2,
            dead,
            "dead letters accounted for: {a:?} {b:?} {later:?}"
        );
        Ok::<_, anyhow::Error>(())
    }
    .await;
    // Whatever happened, the stack goes back to normal for the other tests.
    stackctl(&stack, &["set-env", "thumbnail", "SAFELIGHT_FAULTS", ""]).await?;
    stackctl(
        &stack,
        &[
            "set-env",
            "thumbnail",
            "BREAKER_THRESHOLD",
            threshold.trim(),
        ],
    )
    .await?;
    set_visibility(&stack, "SAFELIGHT_THUMBNAILS_QUEUE_URL", 180).await?;
    for stage in ["thumbnail", "variant"] {
        stack
            .post_json(
                &format!("/api/admin/circuits/{stage}/reset"),
                Some(&admin),
                &json!({}),
            )
            .await?;
    }
    result
}

// ------------------------------------------------------------------------------ migration

fn record(id: ImageId, owner: &OwnerId, size: usize) -> ImageRecord {
    let mut r = testkit::records::image_of(owner)
        .id(id)
        .filename("before.jpg")
        .size(size as u64)
        .age_secs(7200)
        .build();
    r.updated_at = Timestamp::now().plus_secs(-3600);
    r
}

/// The rows of `by_status_v2`'s partition `key` (one shard of one status).
async fn index_partition(stack: &Stack, key: &str) -> Result<Vec<String>> {
    let out = stack
        .dynamodb()
        .query()
        .table_name(stack.var("SAFELIGHT_IMAGES_TABLE")?)
        .index_name(safelight::status_index::INDEX)
        .key_condition_expression("status_key = :k")
        .expression_attribute_values(":k", AttributeValue::S(key.to_owned()))
        .send()
        .await?;
    Ok(out.items().iter().map(|i| text(i, "image_id")).collect())
}

#[tokio::test]
async fn a_row_from_before_the_status_index_is_indexed_by_the_backfill_and_leaves_it_on_completion(
) -> Result<()> {
    let _turn = turn().await;
    let stack = Stack::load().await?;
    let admin = stack.token("user=admin").await?;
    let table = stack.var("SAFELIGHT_IMAGES_TABLE")?;
    let owner: OwnerId = "index-migration".parse()?;
    let failed = async || -> Result<u64> {
        let (status, view) = stack
            .get("/api/admin/processing-queue", Some(&admin))
            .await?;
        assert_eq!(status, 200, "{view}");
        Ok(view["counts"]["failed"].as_u64().unwrap())
    };
    // A failed image as the release before by_status_v2 wrote it: no status_key.
    let id = ImageId::new();
    let mut r = record(id, &owner, 1000);
    r.processing_status = safelight::Status::Failed;
    let mut item = item_from_record(&r)?;
    let key = text(&item, "status_key");
    assert_eq!(
        key,
        format!("failed#{}", safelight::status_index::shard(id))
    );
    item.remove("status_key");
    let before = failed().await?;
    stack
        .dynamodb()
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await?;
    assert!(!index_partition(&stack, &key)
        .await?
        .contains(&id.to_string()));
    assert_eq!(failed().await?, before, "not counted before the backfill");

    let dry = backfill(&stack, "backfill-dry-run.json").await?;
    assert!(dry["rows_indexed"].as_u64() >= Some(1), "{dry}");
    assert!(text(&row(&stack, &id.to_string()).await?, "status_key").is_empty());
    let run = backfill(&stack, "backfill.json").await?;
    assert!(run["rows_indexed"].as_u64() >= Some(1), "{run}");
    assert_eq!(
        text(&row(&stack, &id.to_string()).await?, "status_key"),
        key
    );
    assert!(index_partition(&stack, &key)
        .await?
        .contains(&id.to_string()));
    assert_eq!(failed().await?, before + 1, "counted once indexed");
    let again = backfill(&stack, "backfill-dry-run.json").await?;
    assert_eq!(again["rows_indexed"], 0, "{again}");

    // Written completed (by the adapter's put): the row leaves the index.
    r.processing_status = safelight::Status::Completed;
    r.version += 1;
    stack
        .dynamodb()
        .put_item()
        .table_name(table)
        .set_item(Some(item_from_record(&r)?))
        .send()
        .await?;
    assert!(!index_partition(&stack, &key)
        .await?
        .contains(&id.to_string()));
    assert_eq!(failed().await?, before);
    Ok(())
}

#[tokio::test]
async fn the_migration_dry_runs_exactly_completes_everything_runs_once_and_force_changes_nothing(
) -> Result<()> {
    let _turn = turn().await;
    let stack = Stack::load().await?;
    let ddb = stack.dynamodb();
    let images_table = stack.var("SAFELIGHT_IMAGES_TABLE")?.to_owned();
    let control_table = stack.var("SAFELIGHT_CONTROL_TABLE")?.to_owned();
    let bucket = stack.var("SAFELIGHT_BUCKET")?.to_owned();
    quiet(&stack).await?;
    // A fresh marker, so the test also runs on a stack where it ran before.
    ddb.delete_item()
        .table_name(&control_table)
        .key("pk", AttributeValue::S("migration#backfill-v1".into()))
        .send()
        .await?;
    let existing = stack.keys("originals/").await?.len() as u64;

    // The bucket as a previous system left it: originals that never produced an event here.
    for f in ["thumbnail", "variant"] {
        stackctl(&stack, &["event-source", f, "off"]).await?;
    }
    let seeded = async {
        let owner: OwnerId =
            format!("mig-{}", ulid::Ulid::new().to_string().to_lowercase()).parse()?;
        let photo = jpeg(640, 480);
        let mut ids: Vec<ImageId> = Vec::new();
        for _ in 0..50 {
            let id = ImageId::new();
            stack
                .s3()
                .put_object()
                .bucket(&bucket)
                .key(ObjectKey::original(&owner, id).as_str())
                .content_type("image/jpeg")
                .body(photo.clone().into())
                .send()
                .await?;
            ids.push(id);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        for q in [
            "SAFELIGHT_THUMBNAILS_QUEUE_URL",
            "SAFELIGHT_VARIANTS_QUEUE_URL",
        ] {
            stack
                .sqs()
                .purge_queue()
                .queue_url(stack.var(q)?)
                .send()
                .await?;
        }
        // 20 without a row (ids 0..20), 10 half-done, 5 legacy rows, 15 completed.
        let old = Timestamp::now().plus_secs(-3600);
        for (i, id) in ids.iter().enumerate().skip(20) {
            let item = match i {
                20..30 => {
                    let mut r = record(*id, &owner, photo.len());
                    r.begin(Stage::Thumbnail, old)?;
                    r.complete(Stage::Thumbnail, StageResult::default(), old)?;
                    r.updated_at = old;
                    item_from_record(&r)?
                }
                30..35 => HashMap::from([
                    ("image_id".to_owned(), AttributeValue::S(id.to_string())),
                    ("owner_id".to_owned(), AttributeValue::S(owner.to_string())),
                    (
                        "filename".to_owned(),
                        AttributeValue::S(format!("legacy-{i}.jpg")),
                    ),
                    ("created_at".to_owned(), AttributeValue::S(old.to_string())),
                ]),
                _ => {
                    let mut r = record(*id, &owner, photo.len());
                    for s in Stage::ALL {
                        r.begin(s, old)?;
                        r.complete(s, StageResult::default(), old)?;
                    }
                    r.updated_at = old;
                    item_from_record(&r)?
                }
            };
            ddb.put_item()
                .table_name(&images_table)
                .set_item(Some(item))
                .send()
                .await?;
        }
        Ok::<_, anyhow::Error>((owner, ids))
    };
    let seeded = seeded.await;
    let (owner, ids) = match seeded {
        Ok(v) => v,
        Err(e) => {
            for f in ["thumbnail", "variant"] {
                stackctl(&stack, &["event-source", f, "on"]).await?;
            }
            return Err(e);
        }
    };
    let snapshot = async || -> Result<Vec<HashMap<String, AttributeValue>>> {
        let mut rows = Vec::new();
        for id in &ids {
            if let Ok(r) = row(&stack, &id.to_string()).await {
                rows.push(r);
            }
        }
        Ok(rows)
    };

    let result = async {
        // The dry run: the right numbers, nothing written.
        let before = snapshot().await?;
        assert_eq!(before.len(), 30);
        let dry = backfill(&stack, "backfill-dry-run.json").await?;
        let c = &dry["counts"];
        assert_eq!(dry["dry_run"], true);
        assert_eq!(c["images_found"].as_u64(), Some(existing + 50), "{dry}");
        assert_eq!(c["rows_created"], 20, "{dry}");
        assert_eq!(c["rows_repaired"], 5, "{dry}");
        assert_eq!(c["rows_requeued"], 10, "{dry}");
        assert_eq!(dry["stages"], json!({"thumbnail": 25, "variant": 35}), "{dry}");
        assert_eq!(c["derivatives_missing"], 25 * 3 + 35 * 4, "{dry}");
        assert!(c["completed"].as_u64() >= Some(15), "{dry}");
        let mp = c["megapixels"].as_f64().unwrap();
        assert!((mp - 35.0 * 0.3072).abs() < 0.01, "{mp}");
        assert!(dry["estimate"]["lambda_usd"].as_f64() > Some(0.0), "{dry}");
        assert_eq!(snapshot().await?, before, "the dry run wrote to the images table");
        assert_eq!(depth(&stack, "SAFELIGHT_THUMBNAILS_QUEUE_URL").await?, 0);
        assert_eq!(depth(&stack, "SAFELIGHT_VARIANTS_QUEUE_URL").await?, 0);
        let marker = ddb
            .get_item()
            .table_name(&control_table)
            .key("pk", AttributeValue::S("migration#backfill-v1".into()))
            .send()
            .await?
            .item;
        assert!(marker.is_none(), "the dry run wrote the marker");

        // The real run, then the processors.
        let started = Instant::now();
        let run = backfill(&stack, "backfill.json").await?;
        let pass = started.elapsed();
        assert_eq!(run["start"], "started", "{run}");
        assert_eq!(run["done"], true, "{run}");
        assert_eq!(run["counts"]["rows_created"], 20);
        assert_eq!(run["counts"]["rows_repaired"], 5);
        assert_eq!(run["stages"], json!({"thumbnail": 25, "variant": 35}));
        for f in ["thumbnail", "variant"] {
            stackctl(&stack, &["event-source", f, "on"]).await?;
        }
        let all_done = async || -> Result<bool> {
            for id in &ids {
                if text(&row(&stack, &id.to_string()).await?, "processing_status") != "completed" {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        wait_for("all 50 originals completed", Duration::from_secs(240), all_done).await?;
        let total = started.elapsed();
        println!(
            "migration on the local stack: backfill pass {:.2} s for {} originals ({:.1} originals/s); \
             all 50 completed {:.1} s after the start ({:.2} originals/s end to end)",
            pass.as_secs_f64(),
            existing + 50,
            (existing + 50) as f64 / pass.as_secs_f64(),
            total.as_secs_f64(),
            50.0 / total.as_secs_f64()
        );
        for (i, id) in ids.iter().enumerate() {
            let r = row(&stack, &id.to_string()).await?;
            assert_eq!(text(&r, "owner_id"), owner.as_str());
            if (30..35).contains(&i) {
                assert_eq!(text(&r, "filename"), format!("legacy-{i}.jpg"), "repair kept it");
            }
            if i < 35 {
                let keys = stack.keys(&format!("variants/{id}/")).await?;
                assert_eq!(keys.len(), 4, "{id}: {keys:?}");
            }
            if (20..30).contains(&i) || i >= 35 {
                // Rows that had their thumbnails were not sent to the thumbnail stage again.
                assert!(stack.keys(&format!("thumbnails/{id}/")).await?.is_empty(), "{id}");
            }
        }

        // A second automatic run is refused by the marker.
        let again = backfill(&stack, "backfill.json").await?;
        assert_eq!(again["start"], "refused", "{again}");
        assert!(again["refused"].as_str().unwrap().contains(run["run_id"].as_str().unwrap()));

        // --force runs and changes nothing for completed images.
        let before = snapshot().await?;
        let forced = backfill(&stack, "backfill-force.json").await?;
        assert_eq!(forced["start"], "started", "{forced}");
        assert_ne!(forced["run_id"], run["run_id"]);
        assert_eq!(forced["counts"]["stages_enqueued"], 0, "{forced}");
        assert_eq!(forced["counts"]["rows_created"], 0);
        assert!(forced["counts"]["completed"].as_u64() >= Some(50));
        assert_eq!(snapshot().await?, before, "a forced run changed completed images");
        assert_eq!(depth(&stack, "SAFELIGHT_THUMBNAILS_QUEUE_URL").await?, 0);
        Ok::<_, anyhow::Error>(())
    }
    .await;
    for f in ["thumbnail", "variant"] {
        stackctl(&stack, &["event-source", f, "on"]).await?;
    }
    result
}

/// The migration's throughput for the closing note (not part of `make test`): `MIGRATION_ORIGINALS`
/// originals (default 300) of 640x480 without rows, the deployed `backfill` function's pass timed
/// (originals/s), then the processors until every image is completed (end to end).
/// `cargo test -p safelight-e2e --test ops migration_throughput -- --ignored --nocapture`
#[tokio::test]
#[ignore = "a measurement run; prints figures"]
async fn migration_throughput() -> Result<()> {
    let _turn = turn().await;
    let n: usize = std::env::var("MIGRATION_ORIGINALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let stack = Stack::load().await?;
    let bucket = stack.var("SAFELIGHT_BUCKET")?.to_owned();
    quiet(&stack).await?;
    stack
        .dynamodb()
        .delete_item()
        .table_name(stack.var("SAFELIGHT_CONTROL_TABLE")?)
        .key("pk", AttributeValue::S("migration#backfill-v1".into()))
        .send()
        .await?;
    for f in ["thumbnail", "variant"] {
        stackctl(&stack, &["event-source", f, "off"]).await?;
    }
    let owner: OwnerId = format!("tp-{}", ulid::Ulid::new().to_string().to_lowercase()).parse()?;
    let photo = jpeg(640, 480);
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = ImageId::new();
        stack
            .s3()
            .put_object()
            .bucket(&bucket)
            .key(ObjectKey::original(&owner, id).as_str())
            .content_type("image/jpeg")
            .body(photo.clone().into())
            .send()
            .await?;
        ids.push(id);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for q in [
        "SAFELIGHT_THUMBNAILS_QUEUE_URL",
        "SAFELIGHT_VARIANTS_QUEUE_URL",
    ] {
        stack
            .sqs()
            .purge_queue()
            .queue_url(stack.var(q)?)
            .send()
            .await?;
    }
    let found = stack.keys("originals/").await?.len();
    let started = Instant::now();
    let run = backfill(&stack, "backfill.json").await?;
    let pass = started.elapsed();
    for f in ["thumbnail", "variant"] {
        stackctl(&stack, &["event-source", f, "on"]).await?;
    }
    assert_eq!(run["done"], true, "{run}");
    let mut left: Vec<String> = ids.iter().map(ToString::to_string).collect();
    wait_for(
        "every original completed",
        Duration::from_secs(1800),
        async || {
            let mut still = Vec::new();
            for id in &left {
                if text(&row(&stack, id).await?, "processing_status") != "completed" {
                    still.push(id.clone());
                }
            }
            left = still;
            Ok(left.is_empty())
        },
    )
    .await?;
    let total = started.elapsed();
    println!("| originals in the bucket | without a row | backfill pass | originals/s (pass) | all completed after | originals/s (end to end) |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {found} | {n} | {:.2} s | {:.1} | {:.1} s | {:.2} |",
        pass.as_secs_f64(),
        found as f64 / pass.as_secs_f64(),
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64()
    );
    Ok(())
}
