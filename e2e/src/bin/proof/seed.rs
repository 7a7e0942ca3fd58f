//! The seed's figure: 137 photos uploaded by one browser-like client with 6 uploads in flight
//! (presigned PUTs, like the web client), one WebSocket open: the time until all are uploaded
//! and until the last `complete` notice arrived. Goals: < 5 s and < 30 s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures::stream::{self, StreamExt};

use crate::client::{percentile, upload, Path, Retries};
use crate::fleet::Fleet;
use crate::report::{Check, Section};
use crate::stack::Ctx;

/// Photos in the seed's gallery.
pub const PHOTOS: usize = 137;
/// Uploads in flight.
pub const PARALLEL: usize = 6;

/// Runs the scenario.
pub async fn run(ctx: &Ctx) -> Result<Section> {
    let sub = format!("proof-seed-{}", ctx.run);
    let token = ctx.token(&sub).await?;
    // The seed's photos: 1280-2560 px (what a phone or a camera export gives after resizing).
    let pool: Vec<_> = ctx
        .photos
        .iter()
        .filter(|p| (1280..=2560).contains(&p.class))
        .cloned()
        .collect();
    if pool.is_empty() {
        bail!("no 1280-2560 px photos in the corpus");
    }
    let n = crate::knob("PROOF_SEED_PHOTOS", PHOTOS);
    let photos: Vec<_> = (0..n).map(|i| pool[i % pool.len()].clone()).collect();
    let bytes: u64 = photos.iter().map(|p| p.bytes.len() as u64).sum();
    let fleet = Fleet::open(&ctx.stack, std::slice::from_ref(&token), 1).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let retries = Arc::new(Retries::default());
    let start = Instant::now();
    let results: Vec<_> = stream::iter(photos.iter().enumerate())
        .map(|(i, p)| {
            let token = token.clone();
            let retries = retries.clone();
            async move {
                upload(
                    &ctx.stack,
                    &token,
                    &format!("{i:03}-{}", p.name),
                    &p.bytes,
                    Path::Put,
                    &retries,
                )
                .await
            }
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let uploaded: Vec<_> = results.into_iter().collect::<Result<_>>()?;
    let all_uploaded = uploaded
        .iter()
        .map(|u| u.done.duration_since(start))
        .max()
        .unwrap_or_default();

    // Until every image's terminal notice arrived (3 minutes at most).
    let ids: HashMap<&str, Instant> = uploaded
        .iter()
        .map(|u| (u.image_id.as_str(), u.done))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut terminal: HashMap<String, (String, Instant)> = HashMap::new();
    while Instant::now() < deadline {
        for s in fleet.seen() {
            if ids.contains_key(s.image_id.as_str())
                && (s.kind.ends_with(":complete") || s.kind.ends_with(":failed"))
            {
                terminal
                    .entry(s.image_id.clone())
                    .or_insert((s.kind.clone(), s.at));
            }
        }
        if terminal.len() == ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_done = terminal
        .values()
        .map(|(_, at)| at.duration_since(start))
        .max()
        .unwrap_or_default();
    let failed = terminal
        .values()
        .filter(|(k, _)| k.ends_with(":failed"))
        .count();
    let missing = ids.len() - terminal.len();
    let seen = fleet.seen();
    let mut counts: HashMap<(&str, &str), usize> = HashMap::new();
    for s in &seen {
        *counts
            .entry((s.image_id.as_str(), s.kind.as_str()))
            .or_default() += 1;
    }
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    let latencies: Vec<f64> = uploaded
        .iter()
        .map(|u| u.latency.as_secs_f64() * 1e3)
        .collect();
    let to_notice: Vec<f64> = terminal
        .iter()
        .filter_map(|(id, (_, at))| Some(at.duration_since(*ids.get(id.as_str())?).as_secs_f64()))
        .collect();
    fleet.close().await;

    let mut section = Section::new(
        "seed",
        "The seed's figure: 137 photos, one client, 6 uploads in flight",
    );
    section.figure(
        "photos",
        format!("{n} ({:.1} MB, 1280-2560 px JPEG)", bytes as f64 / 1e6),
    );
    section.figure(
        "all uploaded",
        format!(
            "{:.1} s (goal < 5 s: {})",
            all_uploaded.as_secs_f64(),
            met(all_uploaded.as_secs_f64() < 5.0)
        ),
    );
    section.figure(
        "all processed and notified",
        format!(
            "{:.1} s (goal < 30 s: {})",
            all_done.as_secs_f64(),
            met(missing == 0 && all_done.as_secs_f64() < 30.0)
        ),
    );
    section.figure(
        "upload latency p50 / p99",
        format!(
            "{:.0} ms / {:.0} ms",
            percentile(&latencies, 50.0),
            percentile(&latencies, 99.0)
        ),
    );
    section.figure(
        "upload -> complete notice p50 / p95",
        format!(
            "{:.1} s / {:.1} s",
            percentile(&to_notice, 50.0),
            percentile(&to_notice, 95.0)
        ),
    );
    section.figure(
        "throughput",
        format!(
            "{:.1} photos/s processed end to end",
            PHOTOS as f64 / all_done.as_secs_f64().max(0.001)
        ),
    );
    section.check(Check::zero("images without a terminal notice", missing));
    section.check(Check::zero("images failed", failed));
    section.check(Check::zero("duplicate notices", duplicates));
    Ok(section)
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "not met"
    }
}
