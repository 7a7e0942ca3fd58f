//! Measurements of the live path on the local stack. Ignored by default; they print figures and
//! assert nothing about time:
//!
//! ```text
//! LIVE_BENCH_UPLOADS=100 LIVE_BENCH_CONCURRENCY=1 LIVE_BENCH_SOCKETS=1000 \
//!   cargo test -p safelight-e2e --test live -- --ignored --nocapture --test-threads 1
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream::{self, StreamExt, TryStreamExt};
use safelight::aws::dynamodb::item_from_record;
use safelight::{Stage, StageResult, Timestamp};
use safelight_e2e::Stack;
use testkit::jpeg;

use crate::socket::{Socket, COMPLETE};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: n={} p50={:.0} ms p95={:.0} ms p99={:.0} ms min={:.0} ms max={:.0} ms",
        samples.len(),
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 95.0)),
        ms(percentile(&samples, 99.0)),
        ms(samples.first().copied().unwrap_or_default()),
        ms(samples.last().copied().unwrap_or_default()),
    );
}

/// Upload -> `image:processing:complete` on the uploader's socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run with --ignored --nocapture"]
async fn bench_upload_to_complete_notice_latency() -> Result<()> {
    let uploads = env_or("LIVE_BENCH_UPLOADS", 100);
    let concurrency = env_or("LIVE_BENCH_CONCURRENCY", 1).max(1);
    let stack = Stack::load().await?;
    let (_, token) = stack.fresh_user().await?;
    let mut ws = Socket::open(&stack, &token).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The socket reader records when each image's `complete` arrives.
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    // Row's `processing_completed_at` -> frame read: the live path alone (stream, notify,
    // PostToConnection, socket), on the same clock as the functions.
    let live_path: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let reader = {
        let arrivals = Arc::clone(&arrivals);
        let live_path = Arc::clone(&live_path);
        tokio::spawn(async move {
            let mut failed = 0_usize;
            while let Ok(Some(frame)) = ws.next(Duration::from_secs(120)).await {
                match frame["type"].as_str() {
                    Some(t) if t == COMPLETE => {
                        let id = frame["image_id"].as_str().unwrap_or_default().to_owned();
                        arrivals.lock().unwrap().insert(id, Instant::now());
                        let completed = frame["status"]["processing_completed_at"]
                            .as_str()
                            .and_then(|t| t.parse::<Timestamp>().ok());
                        if let Some(completed) = completed {
                            let lag = Timestamp::now().unix_millis() - completed.unix_millis();
                            live_path
                                .lock()
                                .unwrap()
                                .push(Duration::from_millis(lag.max(0) as u64));
                        }
                    }
                    Some("image:processing:failed") => failed += 1,
                    _ => {}
                }
            }
            failed
        })
    };

    let photo = jpeg(1600, 1200);
    let started = Instant::now();
    let sent: Vec<(String, Instant, Instant)> = stream::iter(0..uploads)
        .map(|_| {
            let (stack, token, photo) = (&stack, &token, &photo);
            async move {
                let t0 = Instant::now();
                let id = stack.upload(token, "image/jpeg", photo).await?;
                Ok::<_, anyhow::Error>((id, t0, Instant::now()))
            }
        })
        .buffer_unordered(concurrency)
        .then(|r| {
            let arrivals = Arc::clone(&arrivals);
            async move {
                let (id, t0, stored) = r?;
                let deadline = Instant::now() + Duration::from_secs(120);
                while !arrivals.lock().unwrap().contains_key(&id) {
                    if Instant::now() > deadline {
                        bail!("no complete notice for {id}");
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Ok((id, t0, stored))
            }
        })
        .try_collect()
        .await?;
    let wall = started.elapsed();
    let arrivals = arrivals.lock().unwrap().clone();
    let mut from_request = Vec::new();
    let mut from_stored = Vec::new();
    for (id, t0, stored) in &sent {
        let at = arrivals[id];
        from_request.push(at - *t0);
        from_stored.push(at - *stored);
    }
    println!(
        "live bench: {uploads} uploads of a 1600x1200 JPEG ({} bytes), concurrency {concurrency}, wall {:.1} s",
        photo.len(),
        wall.as_secs_f64()
    );
    summary("upload request -> complete notice", from_request);
    summary(
        "original stored (PUT returned) -> complete notice",
        from_stored,
    );
    summary(
        "row completed (processing_completed_at) -> complete notice",
        live_path.lock().unwrap().clone(),
    );
    reader.abort();
    Ok(())
}

/// How many sockets the local stack holds at once, and whether one change reaches them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run with --ignored --nocapture"]
async fn bench_concurrent_sockets_and_fan_out() -> Result<()> {
    let target = env_or("LIVE_BENCH_SOCKETS", 1000);
    let stack = Stack::load().await?;
    let (sub, token) = stack.fresh_user().await?;
    // One owner's fan-out is the measure: lift the per-owner socket limit (10) for the run, and
    // put the template's value back after it (set-env prints the old value; none means default).
    let ws_function = stack.var("SAFELIGHT_WS_FUNCTION")?.to_owned();
    let before = stack
        .stackctl(&[
            "set-env",
            &ws_function,
            "MAX_CONNECTIONS_PER_OWNER",
            &target.clamp(1, 1000).to_string(),
        ])
        .await?;
    let result = fan_out(&stack, target, &sub, &token).await;
    let before = before.trim();
    let mut restore = vec!["set-env", ws_function.as_str(), "MAX_CONNECTIONS_PER_OWNER"];
    if !before.is_empty() {
        restore.push(before);
    }
    stack.stackctl(&restore).await?;
    result
}

/// Opens `target` sockets of one owner and measures one change's fan-out to all of them.
async fn fan_out(stack: &Stack, target: usize, sub: &str, token: &str) -> Result<()> {
    let started = Instant::now();
    let opened: Vec<Result<Socket>> = stream::iter(0..target)
        .map(|_| Socket::open(stack, token))
        .buffer_unordered(16)
        .collect()
        .await;
    let open_time = started.elapsed();
    let errors: Vec<String> = opened
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| format!("{e:#}")))
        .collect();
    let sockets: Vec<Socket> = opened.into_iter().filter_map(Result::ok).collect();
    println!(
        "sockets: {} of {target} open in {:.1} s ({} refused/failed{})",
        sockets.len(),
        open_time.as_secs_f64(),
        errors.len(),
        errors
            .first()
            .map(|e| format!(", first: {e}"))
            .unwrap_or_default()
    );

    // One change of one row: notify fans its three notices out to every socket.
    let now = Timestamp::now();
    let mut row = testkit::image(sub).size(1).created(now).build();
    row.begin(Stage::Thumbnail, now)?;
    row.begin(Stage::Variant, now)?;
    row.complete(Stage::Thumbnail, StageResult::default(), now)?;
    row.complete(Stage::Variant, StageResult::default(), now)?;
    let image_id = row.image_id.to_string();
    let fan_out_start = Instant::now();
    stack
        .dynamodb()
        .put_item()
        .table_name(stack.var("SAFELIGHT_IMAGES_TABLE")?)
        .set_item(Some(item_from_record(&row)?))
        .send()
        .await?;
    let listened: Vec<(Option<Duration>, usize, Socket)> = stream::iter(sockets)
        .map(|mut ws| {
            let image_id = image_id.clone();
            async move {
                let mine = |f: &serde_json::Value| f["image_id"] == image_id.as_str();
                let frames = ws
                    .until(Duration::from_secs(120), |f| {
                        f["type"] == COMPLETE && mine(f)
                    })
                    .await
                    .ok();
                let got = frames.as_ref().map(|_| fan_out_start.elapsed());
                let mut seen = frames.unwrap_or_default();
                seen.extend(ws.drain(Duration::from_secs(2)).await.unwrap_or_default());
                (got, seen.iter().filter(|f| mine(f)).count(), ws)
            }
        })
        .buffer_unordered(4096)
        .collect()
        .await;
    let mut results = Vec::new();
    let mut open = Vec::new();
    for (got, frames, ws) in listened {
        results.push((got, frames));
        open.push(ws);
    }
    // Close gently: every close runs `$disconnect`, and the emulator starts a function process
    // per concurrent invocation; thousands at once starve the machine.
    stream::iter(open)
        .for_each_concurrent(8, |ws| async move {
            let _ = ws.close().await;
        })
        .await;
    let reached: Vec<Duration> = results.iter().filter_map(|(d, _)| *d).collect();
    let extra: usize = results.iter().map(|(_, n)| n.saturating_sub(3)).sum();
    println!(
        "fan-out: {} of {} sockets got the complete notice of one change; {} duplicate frames",
        reached.len(),
        results.len(),
        extra
    );
    summary("row written -> complete notice on a socket", reached);
    // Leave the table as found: the row is synthetic.
    stack
        .dynamodb()
        .delete_item()
        .table_name(stack.var("SAFELIGHT_IMAGES_TABLE")?)
        .key("image_id", AttributeValue::S(image_id))
        .send()
        .await?;
    Ok(())
}
