//! The breaker: a processing stage's dependency (reading originals from S3) fails while a backlog
//! arrives (by default the thumbnail stage for two minutes). The circuit must open at the 5th
//! failure, nothing may be dead-lettered or failed while it is open, probes run one at a time
//! after each cool-down, and the backlog drains once the dependency is back.
//!
//! Knobs for a longer trial (issue 18: "a 25-minute breaker outage ends with every uploaded image
//! `completed`, none 'did not arrive'"):
//! - `PROOF_OUTAGE_SECS` (120): how long the dependency is down;
//! - `PROOF_OUTAGE_STAGES` (`thumbnail`): the stages whose `s3_get` fails (`thumbnail,variant`
//!   holds both back, so no attempt starts and the rows stay `awaiting_upload`: the path on
//!   which the sweeper used to report stored uploads as never arrived);
//! - `PROOF_UPLOAD_SPREAD_SECS` (18, or 240 for an outage past the upload link's lifetime + grace):
//!   the uploads are spread over the outage's first seconds;
//! - `PROOF_SWEEP_SECS` (0, or 120 for such an outage): the driver invokes the sweeper this often
//!   (a shortened schedule; the emulator runs no EventBridge schedule);
//! - `PROOF_DRAIN_SECS` (300, or 1200 for such an outage): how long to wait after recovery.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
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
/// The presigned upload lifetime + the sweeper's grace: an upload still `awaiting_upload` past
/// this age is one the sweeper looks at (and before issue 18, expired as never arrived).
const UPLOAD_HORIZON: Duration = Duration::from_secs(15 * 60 + 5 * 60);

fn field<'a>(b: &'a Value, name: &str) -> &'a Value {
    if b[name].is_null() {
        &b["breaker"][name]
    } else {
        &b[name]
    }
}

/// The env-file variables of a stage: (function, queue, DLQ).
fn stage_vars(stage: &str) -> Result<(&'static str, &'static str, &'static str)> {
    Ok(match stage {
        "thumbnail" => (
            "SAFELIGHT_THUMBNAIL_FUNCTION",
            "SAFELIGHT_THUMBNAILS_QUEUE_URL",
            "SAFELIGHT_THUMBNAILS_DLQ_URL",
        ),
        "variant" => (
            "SAFELIGHT_VARIANT_FUNCTION",
            "SAFELIGHT_VARIANTS_QUEUE_URL",
            "SAFELIGHT_VARIANTS_DLQ_URL",
        ),
        other => anyhow::bail!("PROOF_OUTAGE_STAGES: unknown stage {other}"),
    })
}

fn stage_name_of_dlq(dlq_var: &str) -> &'static str {
    if dlq_var.contains("THUMBNAIL") {
        "thumbnails DLQ"
    } else {
        "variants DLQ"
    }
}

/// What was seen of one stage's circuit during the outage.
#[derive(Debug, Default)]
struct Watch {
    opened_before: usize,
    opened_with: Option<usize>,
    max_failures_seen: usize,
    states: Vec<String>,
}

/// What the driver's sweeps reported, summed.
#[derive(Debug, Default)]
struct Sweeps {
    runs: usize,
    unfinished: usize,
    errors: Vec<String>,
    sums: BTreeMap<String, u64>,
    /// Per sweep: seconds since the outage began, uploads_found, uploads_expired.
    found_at: Vec<(u64, u64, u64)>,
}

impl Sweeps {
    fn sum(&self, k: &str) -> u64 {
        self.sums.get(k).copied().unwrap_or(0)
    }
}

fn short(d: Duration) -> String {
    let s = d.as_secs();
    if s % 60 == 0 {
        format!("{} minutes", s / 60)
    } else {
        format!("{s} s")
    }
}

async fn rows(ctx: &Ctx, token: &str, ids: &[String]) -> Vec<Value> {
    stream::iter(ids.to_vec())
        .map(|id| {
            let token = token.to_owned();
            async move { ctx.status(&token, &id).await.unwrap_or(Value::Null) }
        })
        .buffered(8)
        .collect()
        .await
}

fn count(rows: &[Value], f: impl Fn(&Value) -> bool) -> usize {
    rows.iter().filter(|v| f(v)).count()
}

fn completed(v: &Value) -> bool {
    settled(v) && v["thumbnail_status"] == "completed" && v["variant_status"] == "completed"
}

/// Runs the scenario (default breaker settings: 5 failures per hour, 60 s cool-down).
pub async fn run(ctx: &Ctx) -> Result<Section> {
    let sub = format!("proof-breaker-{}", ctx.run);
    let token = ctx.token(&sub).await?;
    let outage =
        Duration::from_secs(crate::knob("PROOF_OUTAGE_SECS", OUTAGE.as_secs() as usize) as u64);
    let long = outage > UPLOAD_HORIZON;
    let stages: Vec<String> = std::env::var("PROOF_OUTAGE_STAGES")
        .unwrap_or_else(|_| "thumbnail".into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    anyhow::ensure!(!stages.is_empty(), "PROOF_OUTAGE_STAGES: no stage");
    for s in &stages {
        stage_vars(s)?;
    }
    let spread = Duration::from_secs(crate::knob(
        "PROOF_UPLOAD_SPREAD_SECS",
        if long { 240 } else { 18 },
    ) as u64);
    let sweep_every = crate::knob("PROOF_SWEEP_SECS", if long { 120 } else { 0 }) as u64;
    let drain_for =
        Duration::from_secs(crate::knob("PROOF_DRAIN_SECS", if long { 1200 } else { 300 }) as u64);

    ctx.reset_breakers().await?;
    let mut watch: BTreeMap<String, Watch> = BTreeMap::new();
    for s in &stages {
        let opened_before = field(&ctx.breaker(s).await?, "times_opened")
            .as_f64()
            .unwrap_or(0.0) as usize;
        watch.insert(
            s.clone(),
            Watch {
                opened_before,
                ..Watch::default()
            },
        );
    }
    for s in &stages {
        ctx.set_env(stage_vars(s)?.0, "SAFELIGHT_FAULTS", "s3_get:1")
            .await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mark = ctx.log_mark();
    let down_at = Instant::now();
    eprintln!(
        "[proof] breaker: s3_get fails on {} for {} s; {BACKLOG} uploads over {} s; sweeps every {} s; drain up to {} s",
        stages.join(","),
        outage.as_secs(),
        spread.as_secs(),
        sweep_every,
        drain_for.as_secs()
    );

    // The driver's sweeps (a shortened schedule), from the outage's start to the drain's end.
    let done = AtomicBool::new(false);
    let sweeper = async {
        let mut sweeps = Sweeps::default();
        if sweep_every == 0 {
            return sweeps;
        }
        let mut next = down_at + Duration::from_secs(sweep_every);
        while !done.load(Ordering::Relaxed) {
            if Instant::now() < next {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            next += Duration::from_secs(sweep_every);
            let at = down_at.elapsed().as_secs();
            let answer = async {
                let f = ctx.stack.var("SAFELIGHT_SWEEPER_FUNCTION")?.to_owned();
                let out = ctx.stack.stackctl(&["invoke", &f]).await?;
                anyhow::Ok(serde_json::from_str::<Value>(out.trim())?)
            }
            .await;
            match answer {
                Ok(report) => {
                    sweeps.runs += 1;
                    if report["finished"] == false {
                        sweeps.unfinished += 1;
                    }
                    if let Some(o) = report.as_object() {
                        for (k, v) in o {
                            if let Some(n) = v.as_u64() {
                                *sweeps.sums.entry(k.clone()).or_insert(0) += n;
                            }
                        }
                    }
                    let n = |k: &str| report[k].as_u64().unwrap_or(0);
                    sweeps
                        .found_at
                        .push((at, n("uploads_found"), n("uploads_expired")));
                    eprintln!("[proof] breaker: sweep at {at} s: {report}");
                }
                Err(e) => {
                    eprintln!("[proof] breaker: sweep at {at} s failed: {e:#}");
                    sweeps.errors.push(format!("{at} s: {e:#}"));
                }
            }
        }
        sweeps
    };

    let scenario = async {
        let out =
            outage_and_drain(ctx, &token, &stages, &mut watch, outage, spread, drain_for).await;
        done.store(true, Ordering::Relaxed);
        out
    };
    let (run, sweeps) = tokio::join!(scenario, sweeper);
    let run = run?;

    // Only this scenario's messages: an earlier scenario's poison files reach the DLQ late (a
    // failed last receive waits out the 180 s visibility timeout first).
    let mine = format!("originals/{sub}/");
    let mut dlq_after = 0usize;
    let mut dlq_depths = Vec::new();
    for dlq in ["SAFELIGHT_THUMBNAILS_DLQ_URL", "SAFELIGHT_VARIANTS_DLQ_URL"] {
        dlq_after += ctx
            .dlq_bodies(dlq)
            .await?
            .iter()
            .filter(|b| b.contains(&mine))
            .count();
        // Letters another reader holds (the sweeper keeps those it has seen hidden until its
        // sweep ends) are not read above: the depth by state says whether there are any.
        let (visible, in_flight, delayed) = ctx.depth_by_state(dlq).await?;
        dlq_depths.push(format!(
            "{}: {visible} visible, {in_flight} in flight, {delayed} delayed",
            stage_name_of_dlq(dlq)
        ));
    }
    let cooldowns = (outage.as_secs() / 60) as usize;
    let found_logged = ctx
        .log_lines(mark, "the upload link expired but the original is stored")
        .len();
    let expired_logged = ctx.log_lines(mark, "upload never came; row expired").len();

    let mut s = Section::new(
        "breaker",
        &format!(
            "Breaker: S3 reads fail for {} under a backlog",
            short(outage)
        ),
    );
    s.figure(
        "outage",
        format!(
            "{} {} s3_get fails 100% for {} s; {BACKLOG} uploads over its first {} s",
            stages.join(" and "),
            if stages.len() > 1 {
                "stages'"
            } else {
                "stage's"
            },
            outage.as_secs(),
            spread.as_secs()
        ),
    );
    if long {
        s.figure(
            "uploads older than the link's lifetime + grace (20 min) while the outage lasted",
            format!("{} of {BACKLOG}", run.past_horizon),
        );
        s.figure(
            "upload_state at the end of the outage",
            run.states_at_end.clone(),
        );
    }
    let mut probes_total = 0usize;
    let mut probes_ok = true;
    let mut opened_ok = true;
    for (stage, w) in &watch {
        let b = &run.after[stage];
        let times_opened = (field(b, "times_opened").as_f64().unwrap_or(0.0) as usize)
            .saturating_sub(w.opened_before);
        let in_stage = |needle: &str| {
            ctx.log_lines(mark, needle)
                .iter()
                .filter(|l| l.contains(&format!("\"stage\":\"{stage}\"")))
                .count()
        };
        let probes = run.probes[stage];
        let deferred = in_stage("circuit open; message deferred");
        probes_total += probes;
        probes_ok &= probes <= cooldowns + 1;
        opened_ok &= w.opened_with == Some(5);
        s.figure(
            &format!("{stage}: circuit states seen"),
            w.states.join(" -> "),
        );
        s.figure(
            &format!("{stage}: failures in the window when it opened"),
            w.opened_with
                .map_or("never opened".into(), |n| n.to_string()),
        );
        s.figure(
            &format!("{stage}: opened (first open + failed probes)"),
            times_opened.to_string(),
        );
        s.figure(
            &format!("{stage}: most failures in the window seen"),
            w.max_failures_seen.to_string(),
        );
        s.figure(
            &format!("{stage}: probes during the outage"),
            format!(
                "{probes} (one per 60 s cool-down: at most {})",
                cooldowns + 1
            ),
        );
        s.figure(
            &format!("{stage}: deferrals (delayed copies, no receive used)"),
            deferred.to_string(),
        );
        s.figure(
            &format!("{stage}: circuit after recovery"),
            field(&run.after_drain[stage], "state")
                .as_str()
                .unwrap_or("closed")
                .to_owned(),
        );
    }
    if sweep_every > 0 {
        s.figure(
            "sweeps (driver-invoked, every ... s)",
            format!(
                "{} every {sweep_every} s ({} unfinished, {} failed to run)",
                sweeps.runs,
                sweeps.unfinished,
                sweeps.errors.len()
            ),
        );
        s.figure(
            "sweeper: uploads_found (originals found stored past the link's lifetime)",
            format!(
                "{} (in the sweeps at {}; log lines: {found_logged})",
                sweeps.sum("uploads_found"),
                sweeps
                    .found_at
                    .iter()
                    .filter(|f| f.1 > 0)
                    .map(|f| format!("{} s: {}", f.0, f.1))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        s.figure(
            "sweeper: uploads_expired, stuck_requeued, stages_failed",
            format!(
                "{}, {}, {} (log lines 'upload never came': {expired_logged})",
                sweeps.sum("uploads_expired"),
                sweeps.sum("stuck_requeued"),
                sweeps.sum("stages_failed")
            ),
        );
    }
    s.figure(
        "recovery -> queues empty and every image ended",
        run.drained.map_or_else(
            || {
                format!(
                    "not within {} s ({} of {BACKLOG} completed)",
                    drain_for.as_secs(),
                    run.completed
                )
            },
            |d| format!("{:.1} s", d.as_secs_f64()),
        ),
    );
    s.figure("final statuses", run.final_statuses.clone());
    s.figure("DLQs at the end (all scenarios)", dlq_depths.join("; "));
    s.check(Check::holds(
        "opened at failure number",
        watch
            .iter()
            .map(|(st, w)| {
                let n = w.opened_with.map_or("-".into(), |n| n.to_string());
                if watch.len() > 1 {
                    format!("{st}: {n}")
                } else {
                    n
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
        "5",
        opened_ok,
    ));
    s.check(Check::zero(
        "rows failed during the outage",
        run.failed_during,
    ));
    s.check(Check::zero(
        "messages that gave up (receives burned)",
        run.gave_up,
    ));
    s.check(Check::holds(
        "probes during the outage",
        probes_total.to_string(),
        &format!("<= {} per stage", cooldowns + 1),
        probes_ok,
    ));
    s.check(Check::holds(
        "backlog drained after recovery (queues empty, every image ended)",
        format!("{} of {BACKLOG} completed", run.completed),
        "all ended",
        run.drained.is_some(),
    ));
    s.check(Check::zero(
        "images reported as never arrived (upload_state expired)",
        run.expired,
    ));
    s.check(Check::zero("images not completed", BACKLOG - run.completed));
    s.check(Check::zero(
        "this scenario's messages dead-lettered (during the outage or after)",
        dlq_after,
    ));
    for e in &sweeps.errors {
        s.note(format!("a sweep failed to run: {e}"));
    }
    Ok(s)
}

/// What the outage and the drain showed.
#[derive(Debug)]
struct Outcome {
    past_horizon: usize,
    states_at_end: String,
    failed_during: usize,
    gave_up: usize,
    probes: BTreeMap<String, usize>,
    after: BTreeMap<String, Value>,
    after_drain: BTreeMap<String, Value>,
    drained: Option<Duration>,
    completed: usize,
    expired: usize,
    final_statuses: String,
}

fn count_lines(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

fn tally(rows: &[Value], key: &str) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows {
        *by.entry(r[key].as_str().unwrap_or("unreadable").to_owned())
            .or_insert(0) += 1;
    }
    by.iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn outage_and_drain(
    ctx: &Ctx,
    token: &str,
    stages: &[String],
    watch: &mut BTreeMap<String, Watch>,
    outage: Duration,
    spread: Duration,
    drain_for: Duration,
) -> Result<Outcome> {
    let down_at = Instant::now();
    let mark = ctx.log_mark();
    // The backlog arrives during the outage's first seconds.
    let retries = Retries::default();
    let photos: Vec<_> = ctx
        .photos
        .iter()
        .filter(|p| p.class <= 1920)
        .cloned()
        .collect();
    let mut ids = Vec::new();
    let mut uploaded_at = Vec::new();
    let gap = spread / BACKLOG as u32;
    for i in 0..BACKLOG {
        let p = &photos[i % photos.len()];
        ids.push(
            upload(
                &ctx.stack,
                token,
                &format!("b{i}"),
                &p.bytes,
                Path::Put,
                &retries,
            )
            .await?
            .image_id,
        );
        uploaded_at.push(Instant::now());
        // Watch the circuits between uploads too.
        let until = Instant::now() + gap;
        while Instant::now() < until {
            observe(ctx, stages, watch).await?;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // Watch the circuits until the outage ends.
    let mut last_report = Instant::now();
    while down_at.elapsed() < outage {
        observe(ctx, stages, watch).await?;
        if last_report.elapsed() > Duration::from_secs(60) {
            last_report = Instant::now();
            let now = rows(ctx, token, &ids).await;
            eprintln!(
                "[proof] breaker: {} s into the outage: upload_state {}; processing {}",
                down_at.elapsed().as_secs(),
                tally(&now, "upload_state"),
                tally(&now, "processing_status")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let end = Instant::now();
    let past_horizon = uploaded_at
        .iter()
        .filter(|t| end.duration_since(**t) > UPLOAD_HORIZON)
        .count();
    let during = rows(ctx, token, &ids).await;
    let failed_during = count(&during, |v| {
        v["processing_status"] == "failed"
            || v["thumbnail_status"] == "failed"
            || v["variant_status"] == "failed"
    });
    let states_at_end = tally(&during, "upload_state");
    let mut after = BTreeMap::new();
    for s in stages {
        after.insert(s.clone(), ctx.breaker(s).await?);
    }
    let gave_up = ctx.log_lines(mark, "gave up after").len();
    let probe_lines = ctx.log_lines(mark, "this message is the probe");
    let probes = stages
        .iter()
        .map(|s| {
            let tag = format!("\"stage\":\"{s}\"");
            (s.clone(), count_lines(&probe_lines, &tag))
        })
        .collect();

    // Recovery.
    for s in stages {
        ctx.set_env(stage_vars(s)?.0, "SAFELIGHT_FAULTS", "")
            .await?;
    }
    let recovered_at = Instant::now();
    eprintln!("[proof] breaker: faults lifted; draining");
    let drain_deadline = recovered_at + drain_for;
    let mut drained = None;
    let mut last = Vec::new();
    let mut last_report = Instant::now();
    while Instant::now() < drain_deadline {
        let mut depth = 0;
        for s in stages {
            depth += ctx.depth(stage_vars(s)?.1).await?;
        }
        last = rows(ctx, token, &ids).await;
        let done = count(&last, completed);
        // Every image ended (a failed one will not complete: waiting on would only hide it
        // behind the drain deadline; "images not completed" counts it).
        if depth == 0 && count(&last, settled) == ids.len() {
            drained = Some(recovered_at.elapsed());
            break;
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            eprintln!(
                "[proof] breaker: {} s after recovery: {done} of {} completed, queue depth {depth}",
                recovered_at.elapsed().as_secs(),
                ids.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let completed_n = count(&last, completed);
    let expired = count(&last, |v| v["upload_state"] == "expired");
    for (id, v) in ids.iter().zip(&last) {
        if !completed(v) {
            eprintln!("[proof] breaker: not completed: {id}: {v}");
        }
    }
    let mut after_drain = BTreeMap::new();
    for s in stages {
        after_drain.insert(s.clone(), ctx.breaker(s).await?);
    }
    let final_statuses = format!(
        "processing_status: {}; upload_state: {}",
        tally(&last, "processing_status"),
        tally(&last, "upload_state")
    );
    Ok(Outcome {
        past_horizon,
        states_at_end,
        failed_during,
        gave_up,
        probes,
        after,
        after_drain,
        drained,
        completed: completed_n,
        expired,
        final_statuses,
    })
}

/// Reads each stage's circuit once and notes its state.
async fn observe(ctx: &Ctx, stages: &[String], watch: &mut BTreeMap<String, Watch>) -> Result<()> {
    for s in stages {
        let b = ctx.breaker(s).await?;
        let Some(w) = watch.get_mut(s) else {
            continue;
        };
        let state = field(&b, "state").as_str().unwrap_or("closed").to_owned();
        let failures = field(&b, "failures").as_array().map_or(0, Vec::len);
        w.max_failures_seen = w.max_failures_seen.max(failures);
        if state != "closed" && w.opened_with.is_none() {
            w.opened_with = Some(failures);
        }
        if w.states.last() != Some(&state) {
            w.states.push(state);
        }
    }
    Ok(())
}
