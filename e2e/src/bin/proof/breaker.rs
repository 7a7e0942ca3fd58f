//! The breaker: the thumbnail stage's dependency (reading originals from S3) fails for two
//! minutes while a backlog arrives. The circuit must open at the 5th failure, nothing may be
//! dead-lettered or failed while it is open, probes run one at a time after each cool-down, and
//! the backlog drains once the dependency is back.

use std::time::{Duration, Instant};

use anyhow::Result;
use futures::stream::{self, StreamExt};
use serde_json::Value;

use crate::client::{upload, Path, Retries};
use crate::report::{Check, Section};
use crate::stack::{settled, Ctx};

/// How long the dependency is down.
pub const OUTAGE: Duration = Duration::from_secs(120);
/// Images in the backlog.
pub const BACKLOG: usize = 30;

fn field<'a>(b: &'a Value, name: &str) -> &'a Value {
    if b[name].is_null() {
        &b["breaker"][name]
    } else {
        &b[name]
    }
}

/// Runs the scenario (default breaker settings: 5 failures per hour, 60 s cool-down).
pub async fn run(ctx: &Ctx) -> Result<Section> {
    let sub = format!("proof-breaker-{}", ctx.run);
    let token = ctx.token(&sub).await?;
    ctx.reset_breakers().await?;
    let opened_before = field(&ctx.breaker("thumbnail").await?, "times_opened")
        .as_f64()
        .unwrap_or(0.0) as usize;
    ctx.set_env(
        "SAFELIGHT_THUMBNAIL_FUNCTION",
        "SAFELIGHT_FAULTS",
        "s3_get:1",
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mark = ctx.log_mark();
    let down_at = Instant::now();

    // The backlog arrives during the outage's first 20 s.
    let retries = Retries::default();
    let photos: Vec<_> = ctx
        .photos
        .iter()
        .filter(|p| p.class <= 1920)
        .cloned()
        .collect();
    let mut ids = Vec::new();
    let mut opened_with: Option<usize> = None;
    let mut max_failures_seen = 0usize;
    let mut states = Vec::new();
    for i in 0..BACKLOG {
        let p = &photos[i % photos.len()];
        ids.push(
            upload(
                &ctx.stack,
                &token,
                &format!("b{i}"),
                &p.bytes,
                Path::Put,
                &retries,
            )
            .await?
            .image_id,
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    // Watch the circuit until the outage ends.
    let mut failed_during = 0usize;
    let outage =
        Duration::from_secs(crate::knob("PROOF_OUTAGE_SECS", OUTAGE.as_secs() as usize) as u64);
    while down_at.elapsed() < outage {
        let b = ctx.breaker("thumbnail").await?;
        let state = field(&b, "state").as_str().unwrap_or("closed").to_owned();
        let failures = field(&b, "failures").as_array().map_or(0, Vec::len);
        max_failures_seen = max_failures_seen.max(failures);
        if state != "closed" && opened_with.is_none() {
            opened_with = Some(failures);
        }
        if states.last() != Some(&state) {
            states.push(state);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let during: Vec<Value> = stream::iter(ids.clone())
        .map(|id| {
            let token = token.clone();
            async move { ctx.status(&token, &id).await.unwrap_or(Value::Null) }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    failed_during += during
        .iter()
        .filter(|v| v["thumbnail_status"] == "failed")
        .count();
    let b = ctx.breaker("thumbnail").await?;
    let times_opened =
        (field(&b, "times_opened").as_f64().unwrap_or(0.0) as usize).saturating_sub(opened_before);
    let probes = ctx.log_lines(mark, "this message is the probe").len();
    let deferred = ctx.log_lines(mark, "defer").len();
    let gave_up = ctx.log_lines(mark, "gave up after").len();

    // Recovery.
    ctx.set_env("SAFELIGHT_THUMBNAIL_FUNCTION", "SAFELIGHT_FAULTS", "")
        .await?;
    let recovered_at = Instant::now();
    let drain_deadline = recovered_at + Duration::from_secs(300);
    let mut drained = None;
    let mut completed = 0;
    while Instant::now() < drain_deadline {
        let depth = ctx.depth("SAFELIGHT_THUMBNAILS_QUEUE_URL").await?;
        let rows: Vec<Value> = stream::iter(ids.clone())
            .map(|id| {
                let token = token.clone();
                async move { ctx.status(&token, &id).await.unwrap_or(Value::Null) }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        completed = rows
            .iter()
            .filter(|v| settled(v) && v["thumbnail_status"] == "completed")
            .count();
        if depth == 0 && completed == ids.len() {
            drained = Some(recovered_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Only this scenario's messages: an earlier scenario's poison files reach the DLQ late (a
    // failed last receive waits out the 180 s visibility timeout first).
    let mine = format!("originals/{sub}/");
    let dlq_after = ctx
        .dlq_bodies("SAFELIGHT_THUMBNAILS_DLQ_URL")
        .await?
        .iter()
        .filter(|b| b.contains(&mine))
        .count();
    let b_after = ctx.breaker("thumbnail").await?;
    let cooldowns = (outage.as_secs() / 60) as usize;

    let mut s = Section::new(
        "breaker",
        "Breaker: S3 reads fail for 2 minutes under a backlog",
    );
    s.figure(
        "outage",
        format!(
            "thumbnail stage's s3_get fails 100% for {} s; {BACKLOG} uploads in its first 20 s",
            outage.as_secs()
        ),
    );
    s.figure("circuit states seen", states.join(" -> "));
    s.figure(
        "failures in the window when it opened",
        opened_with.map_or("never opened".into(), |n| n.to_string()),
    );
    s.figure(
        "opened (first open + failed probes)",
        times_opened.to_string(),
    );
    s.figure(
        "most failures in the window seen",
        max_failures_seen.to_string(),
    );
    s.figure(
        "probes during the outage",
        format!(
            "{probes} (one per 60 s cool-down: at most {})",
            cooldowns + 1
        ),
    );
    s.figure(
        "deferrals (delayed copies, no receive used)",
        deferred.to_string(),
    );
    s.figure(
        "recovery -> queue empty and all thumbnails completed",
        drained.map_or_else(
            || format!("not within 300 s ({completed} of {BACKLOG} completed)"),
            |d| format!("{:.1} s", d.as_secs_f64()),
        ),
    );
    s.figure(
        "circuit after recovery",
        field(&b_after, "state")
            .as_str()
            .unwrap_or("closed")
            .to_owned(),
    );
    s.check(Check::holds(
        "opened at failure number",
        opened_with.map_or("-".into(), |n| n.to_string()),
        "5",
        opened_with == Some(5),
    ));
    s.check(Check::zero("rows failed during the outage", failed_during));
    s.check(Check::zero(
        "messages that gave up (receives burned)",
        gave_up,
    ));
    s.check(Check::holds(
        "probes during the outage",
        probes.to_string(),
        &format!("<= {}", cooldowns + 1),
        probes <= cooldowns + 1,
    ));
    s.check(Check::holds(
        "backlog drained after recovery",
        format!("{completed} of {BACKLOG}"),
        "all",
        drained.is_some(),
    ));
    s.check(Check::zero(
        "this scenario's messages dead-lettered (during the outage or after)",
        dlq_after,
    ));
    Ok(s)
}
