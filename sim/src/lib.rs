//! A deterministic simulation of the processing pipeline (`make simulate`; a bounded run is part
//! of `make test`).
//!
//! The real code — [`Processor`] (both stages), the [`Sweeper`], the owner's retry and
//! retry-all-failed — runs over the in-memory ports of `safelight::testing`, wrapped in
//! [`faults::Faulty`] (the shared fault decorator with the simulation's injector), on a
//! single-threaded tokio runtime whose clock is paused: time moves only when every task waits, so a schedule of hours takes milliseconds, and the product's own clock
//! and jitter read the same virtual clock and a seeded generator (`safelight::determinism`). The
//! world around the code is modelled as AWS documents it: S3 with versions and "Object Created"
//! events, EventBridge delivering each event to both queues (late, twice, or not at all: to the
//! rule's DLQ), SQS standard queues ([`sqs`]) with visibility, receive counts, redrive after 3
//! receives, at-least-once delivery and sampling short polls, the event source mapping with its
//! batches, concurrency, partial batch responses and repeated invocations, Lambda's deadline
//! (an invocation past it is killed), and processes that die between any two port calls. A
//! [`Scenario`] drawn from the seed decides how much of each kind of trouble a schedule meets.
//!
//! At quiescence (every upload made, every queue empty, the sweeper run past its horizons) the
//! invariants of docs/ARCHITECTURE.md are checked ([`check`]); a few are checked as the schedule
//! runs (a derivative written after its stage completed, a notice derived twice, a sweep that
//! left stale dead letters' rows behind). A failing seed prints the scenario, the violations and
//! the schedule's trace, shrunk to the simplest scenario that still fails; the same seed and
//! scenario replay it exactly.

pub mod check;
pub mod faults;
pub mod rng;
pub mod sqs;
pub mod world;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use safelight::engine::{default_thumbnail_specs, default_variant_specs, Limits};
use safelight::ops::sweep::{SweepPolicy, SweepPorts, Sweeper};
use safelight::processing::{Message, Policy, Ports, Processor};
use safelight::testing::{MemoryControl, MemoryImages, MemoryStore};
use safelight::{
    ContentType, ImageId, ImageRecord, NewImage, ObjectKey, OwnerId, Stage, Timestamp, UploadState,
};

use faults::{faulty, watched, Ctx, Faulty, Proc, SimQueues, Watched};
pub use world::Scenario;
use world::{stage_ix, Upload, World};

/// 2026-01-01T00:00:00Z: where every simulation's clock starts.
pub const EPOCH_MS: i64 = 1_767_225_600_000;
/// The processors' function timeout (the template's 30 s).
pub const FUNCTION_TIMEOUT_MS: i64 = 30_000;
/// The event source mapping's maximum concurrency per stage in the simulation.
pub const MAX_CONCURRENCY: usize = 3;
/// The presigned upload lifetime (15 minutes).
pub const PRESIGN_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// The sweeper's schedule (every 5 minutes).
pub const SWEEP_EVERY_MS: i64 = 5 * 60_000;
/// The sweeper's time budget per run (its function's 60 s timeout, less a margin).
pub const SWEEP_BUDGET: Duration = Duration::from_secs(50);
/// How long the world keeps running after it first goes quiet (the sweeper's horizons).
pub const SETTLE_MS: i64 = 3 * 3_600_000;
/// Owners and operators retry only during the first hours (then the world settles).
pub const RETRY_UNTIL_MS: i64 = 2 * 3_600_000;
/// A schedule that has not settled by then never will.
pub const HORIZON_MS: i64 = 4 * 24 * 3_600_000;

type SimProcessor = Processor<
    Faulty<Watched<MemoryStore>>,
    Faulty<Watched<MemoryImages>>,
    Faulty<SimQueues>,
    Faulty<MemoryControl>,
>;

/// What one schedule did and found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Its scenario.
    pub scenario: Scenario,
    /// Broken invariants (empty: the schedule passed).
    pub violations: Vec<String>,
    /// The schedule, line by line.
    pub trace: Vec<world::Event>,
    /// Images that ended completed / failed.
    pub completed: usize,
    /// Images that ended failed.
    pub failed: usize,
    /// Virtual time the schedule took.
    pub virtual_ms: i64,
}

/// Runs one schedule: `seed` with its own scenario.
pub fn run_seed(seed: u64) -> Outcome {
    run(seed, Scenario::for_seed(seed))
}

/// Runs one schedule of `scenario` with `seed`.
pub fn run(seed: u64, scenario: Scenario) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            return Outcome {
                seed,
                scenario,
                violations: vec![format!("could not start a runtime: {e}")],
                trace: Vec::new(),
                completed: 0,
                failed: 0,
                virtual_ms: 0,
            }
        }
    };
    runtime.block_on(async move {
        safelight::determinism::install(EPOCH_MS, seed);
        let outcome = simulate(seed, scenario).await;
        safelight::determinism::uninstall();
        outcome
    })
}

/// A failing schedule shrunk: the simplest scenario (fewer images, fewer kinds of trouble) for
/// which the same seed still breaks an invariant.
pub fn shrink(failed: Outcome) -> Outcome {
    let mut best = failed;
    loop {
        let simpler = best
            .scenario
            .simpler()
            .into_iter()
            .map(|s| run(best.seed, s))
            .find(|o| !o.violations.is_empty());
        match simpler {
            Some(o) => best = o,
            None => return best,
        }
    }
}

/// A small valid PNG (`shade` changes its pixels, not its size much).
fn png(shade: u16) -> Vec<u8> {
    safelight::testing::png_rgba16_one_colour(24, 16, [shade, 1000, 2000, 65535])
}

async fn simulate(seed: u64, scenario: Scenario) -> Outcome {
    let world = Arc::new(World::new(seed, scenario.clone(), EPOCH_MS));
    let queues = SimQueues::new(&world);
    world.note(format!("seed {seed}: {scenario:?}"));

    // Uploads.
    let owners: Vec<OwnerId> = ["alice", "bob"]
        .iter()
        .filter_map(|o| o.parse().ok())
        .collect();
    for i in 0..scenario.images {
        let plan = if scenario.odd_uploads {
            match world.range(0, 9) {
                0 => Upload::Never,
                1 => Upload::Corrupt,
                2 => Upload::Late,
                3 => Upload::Twice,
                _ => Upload::Normal,
            }
        } else {
            Upload::Normal
        };
        let id: ImageId = match ulid::Ulid::from_parts(
            EPOCH_MS as u64 + i as u64,
            u128::from(seed) << 16 | i as u128,
        )
        .to_string()
        .parse()
        {
            Ok(id) => id,
            Err(_) => continue,
        };
        let owner = owners[i % owners.len()].clone();
        world.state().uploads_pending += 1;
        tokio::spawn(upload(Arc::clone(&world), id, owner, plan));
    }

    // The event source mappings, the sweeper.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for stage in Stage::ALL {
        tokio::spawn(event_source(
            Arc::clone(&world),
            Arc::clone(&queues),
            stage,
            Arc::clone(&stop),
        ));
    }
    tokio::spawn(sweeps(
        Arc::clone(&world),
        Arc::clone(&queues),
        Arc::clone(&stop),
    ));
    if scenario.owner_retries {
        tokio::spawn(owner_retries(
            Arc::clone(&world),
            Arc::clone(&queues),
            Arc::clone(&stop),
        ));
    }
    if scenario.retry_all {
        tokio::spawn(retry_all(
            Arc::clone(&world),
            Arc::clone(&queues),
            Arc::clone(&stop),
        ));
    }

    // Until quiet, then through the sweeper's horizons.
    let mut quiet_since: Option<i64> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let t = world.elapsed();
        if t > HORIZON_MS {
            world.violation(format!(
                "did not settle within {} days: messages still moving (deferred for ever?)",
                HORIZON_MS / 86_400_000
            ));
            break;
        }
        let troubles_over = [world.scenario.outage, world.scenario.refusal]
            .iter()
            .flatten()
            .all(|(start, len)| t >= start + len);
        let quiet = troubles_over && {
            let st = world.state();
            st.uploads_pending == 0
                && st.in_transit == 0
                && st.running == 0
                && Stage::ALL.iter().all(|s| st.queues.main(*s).is_empty())
        };
        match (quiet, quiet_since) {
            (true, None) => quiet_since = Some(t),
            (true, Some(since)) if t - since > SETTLE_MS => break,
            (false, _) => quiet_since = None,
            _ => {}
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    // Let running tasks see the stop.
    tokio::time::sleep(Duration::from_secs(60)).await;

    check::at_quiescence(&world);
    let rows = world.images.rows();
    let st = world.state();
    Outcome {
        seed,
        scenario,
        violations: st.violations.clone(),
        trace: st.trace.clone(),
        completed: rows
            .iter()
            .filter(|r| r.processing_status == safelight::Status::Completed)
            .count(),
        failed: rows
            .iter()
            .filter(|r| r.processing_status == safelight::Status::Failed)
            .count(),
        virtual_ms: world.elapsed(),
    }
}

/// One image's upload: the row the upload function makes, then the browser's PUT (or not).
async fn upload(world: Arc<World>, id: ImageId, owner: OwnerId, plan: Upload) {
    tokio::time::sleep(Duration::from_millis(world.range(0, 120_000))).await;
    let good = png((id.to_string().len() as u16).wrapping_mul(977));
    let record = ImageRecord::new(
        NewImage {
            image_id: id,
            owner_id: owner.clone(),
            filename: Some("photo.png".into()),
            content_type: ContentType::Png,
            byte_size: good.len() as u64,
            sha256: None,
            upload_state: UploadState::AwaitingUpload,
        },
        Timestamp::now(),
    );
    use safelight::ports::ImageRepository as _;
    let images = watched(&world.images, &Ctx::operator(&world));
    // The upload function answers only once its row is written; a failed write is the
    // client's 503, and it asks again.
    while images.create(&record).await.is_err() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    world.state().ledger.entry(id).or_default().upload = Some(plan);
    world.note(format!("{id}: row made, upload {plan:?}"));
    let key = ObjectKey::original(&owner, id);
    let lifetime = PRESIGN_LIFETIME.as_millis() as u64;
    let (after, bytes) = match plan {
        Upload::Never => {
            world.state().uploads_pending -= 1;
            return;
        }
        Upload::Late => (world.range(lifetime / 2, lifetime - 30_000), good.clone()),
        Upload::Corrupt => {
            let mut bad = good.clone();
            for b in bad.iter_mut().skip(40) {
                *b = 0x5A;
            }
            (world.range(500, 20_000), bad)
        }
        Upload::Normal | Upload::Twice => (world.range(500, 20_000), good.clone()),
    };
    tokio::time::sleep(Duration::from_millis(after)).await;
    let version = world.store.insert(key.as_str(), bytes, "image/png");
    {
        let mut st = world.state();
        let now = world.elapsed();
        let ledger = st.ledger.entry(id).or_default();
        ledger.stored_at = Some(now);
        ledger.first_version = Some(version.clone());
    }
    world.note(format!("{id}: original stored as {version}"));
    publish(&world, &key, good.len() as u64, &version);
    if plan == Upload::Twice {
        // The same form sent again with another file of the same size, within its policy.
        tokio::time::sleep(Duration::from_millis(world.range(1_000, 600_000))).await;
        let mut other = png(7);
        other.resize(good.len(), 0);
        let second = world.store.insert(key.as_str(), other, "image/png");
        world.note(format!("{id}: second write to the key as {second}"));
        publish(&world, &key, good.len() as u64, &second);
    }
    world.state().uploads_pending -= 1;
}

/// The bucket's "Object Created" event through the EventBridge rule to both queues.
fn publish(world: &Arc<World>, key: &ObjectKey, size: u64, version: &str) {
    let mut object = serde_json::json!({ "key": key.as_str(), "size": size });
    if world.scenario.event_versions {
        object["version-id"] = serde_json::Value::String(version.to_owned());
    }
    let body = serde_json::json!({
        "version": "0", "id": format!("ev-{}", world.range(0, u64::MAX / 2)),
        "detail-type": "Object Created", "source": "aws.s3", "account": "123456789012",
        "time": Timestamp::now().to_string(), "region": "us-east-1", "resources": [],
        "detail": { "version": "0", "bucket": { "name": "sim" }, "object": object,
                    "reason": "PutObject" }
    })
    .to_string();
    for stage in Stage::ALL {
        if world.chance(world.scenario.drop_event) {
            world.note(format!(
                "event for {key} to {stage} not delivered (rule DLQ)"
            ));
            world.state().undelivered.push(body.clone());
            if let Some(id) = key
                .as_str()
                .rsplit('/')
                .next()
                .and_then(|i| i.parse::<ImageId>().ok())
            {
                let mut st = world.state();
                let ledger = st.ledger.entry(id).or_default();
                ledger.faulted[stage_ix(stage)] += 1;
                *ledger.lost_events.entry(version.to_owned()).or_default() += 1;
            }
            continue;
        }
        let copies = if world.chance(world.scenario.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            world.state().in_transit += 1;
            let (world, body, key) = (Arc::clone(world), body.clone(), key.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(world.range(10, 3_000))).await;
                let now = world.now_ms();
                let id = {
                    let mut st = world.state();
                    st.in_transit -= 1;
                    st.queues.send(stage, &body, 0, now, None)
                };
                world.note(format!("event for {key} delivered to {stage} as {id}"));
            });
        }
    }
}

/// A warm process and its processor.
struct Warm {
    proc: Arc<Proc>,
    processor: Arc<SimProcessor>,
}

/// The SQS event source mapping of one stage: long polls, batches of up to 10, up to
/// [`MAX_CONCURRENCY`] invocations at once on warm or new processes.
async fn event_source(
    world: Arc<World>,
    queues: Arc<SimQueues>,
    stage: Stage,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let pool: Arc<Mutex<Vec<Warm>>> = Arc::default();
    let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut next_proc = 0u64;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let now = world.now_ms();
        let busy = running.load(std::sync::atomic::Ordering::SeqCst) >= MAX_CONCURRENCY;
        let (batch, next_visible) = {
            let mut st = world.state();
            let size = st.rng.range(1, 10) as usize;
            let duplicate = world.scenario.duplicate / 4.0;
            let crate::world::State { queues: q, rng, .. } = &mut *st;
            let batch = if busy {
                Vec::new()
            } else {
                q.receive(stage, size, now, duplicate, rng)
            };
            (batch, q.main(stage).next_visible())
        };
        note_capped(&world, &batch, now);
        if batch.is_empty() {
            let wait = next_visible.map_or(20_000, |t| (t - now).clamp(100, 20_000));
            let wait = if busy { 200 } else { wait };
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            continue;
        }
        let invocations = if world.chance(world.scenario.duplicate / 4.0) {
            2 // the event source mapping invokes the same batch twice (at-least-once)
        } else {
            1
        };
        for _ in 0..invocations {
            let warm = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let warm = match warm {
                Some(w) => w,
                None => {
                    next_proc += 1;
                    new_process(
                        &world,
                        &queues,
                        stage,
                        next_proc + stage_ix(stage) as u64 * 1_000_000,
                    )
                }
            };
            running.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            world.state().running += 1;
            tokio::spawn(invoke(
                Arc::clone(&world),
                stage,
                warm,
                batch.clone(),
                Arc::clone(&pool),
                Arc::clone(&running),
            ));
        }
    }
}

fn new_process(world: &Arc<World>, queues: &Arc<SimQueues>, stage: Stage, id: u64) -> Warm {
    let proc = Arc::new(Proc::new(id, stage));
    let ctx = Ctx::process(world, &proc);
    let specs = match stage {
        Stage::Thumbnail => default_thumbnail_specs(),
        Stage::Variant => default_variant_specs(),
    };
    let processor = Processor::new(
        stage,
        specs,
        Limits::default(),
        Policy::default(),
        Ports {
            store: watched(&world.store, &ctx),
            images: watched(&world.images, &ctx),
            queue: faulty(queues, &ctx),
            control: faulty(&world.control, &ctx),
        },
    );
    Warm {
        proc,
        processor: Arc::new(processor),
    }
}

/// One Lambda invocation: the batch through the processor, killed at the deadline or when its
/// process dies; the messages not reported failed are deleted.
async fn invoke(
    world: Arc<World>,
    stage: Stage,
    warm: Warm,
    batch: Vec<Message>,
    pool: Arc<Mutex<Vec<Warm>>>,
    running: Arc<std::sync::atomic::AtomicUsize>,
) {
    *warm.proc.batch.lock().unwrap_or_else(|p| p.into_inner()) = batch.clone();
    world.note(format!(
        "invoke {stage} process {} with {}",
        warm.proc.id,
        batch
            .iter()
            .map(|m| format!("{}#{}", m.message_id, m.receive_count))
            .collect::<Vec<_>>()
            .join(",")
    ));
    let deadline = Timestamp::from_unix_millis(world.now_ms() + FUNCTION_TIMEOUT_MS);
    let processor = Arc::clone(&warm.processor);
    let work = {
        let batch = batch.clone();
        async move { processor.handle_batch_until(&batch, Some(deadline)).await }
    };
    let died = warm.proc.died();
    let outcome = tokio::select! {
        biased;
        () = died => None,
        kept = tokio::time::timeout(Duration::from_millis(FUNCTION_TIMEOUT_MS as u64), work) => kept.ok(),
    };
    match outcome {
        Some(keep) => {
            let now_deleted: Vec<&Message> = batch
                .iter()
                .filter(|m| !keep.contains(&m.message_id))
                .collect();
            {
                let mut st = world.state();
                for m in &now_deleted {
                    st.queues.delete(stage, &m.receipt_handle);
                }
            }
            pool.lock().unwrap_or_else(|p| p.into_inner()).push(warm);
        }
        None => {
            // Killed, or past the deadline (Lambda ends the environment): every image whose
            // lease this invocation still held was abandoned mid-attempt.
            warm.proc.kill();
            world.note(format!("process {} ended abnormally", warm.proc.id));
            for (image, m) in warm.proc.batch_images() {
                let held = world
                    .control
                    .lease_of(stage, image)
                    .is_some_and(|l| l.holder == m.message_id && l.receive == m.receive_count);
                let mut st = world.state();
                let ledger = st.ledger.entry(image).or_default();
                ledger.killed[stage_ix(stage)] += 1;
                if held {
                    ledger.abandoned[stage_ix(stage)] += 1;
                }
            }
        }
    }
    running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    world.state().running -= 1;
}

/// The scheduled sweeper, every 5 minutes, each run checked against what it must do.
async fn sweeps(
    world: Arc<World>,
    queues: Arc<SimQueues>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let ctx = Ctx::operator(&world);
    let (images, dead_letters, store, queue) = (
        watched(&world.images, &ctx),
        faulty(&queues, &ctx),
        watched(&world.store, &ctx),
        faulty(&queues, &ctx),
    );
    let sweeper = Sweeper::new(
        SweepPorts {
            images: &images,
            dead_letters: &dead_letters,
            store: &store,
            queue: &queue,
        },
        SweepPolicy {
            presign_lifetime: PRESIGN_LIFETIME,
            ..SweepPolicy::default()
        },
    );
    let policy = SweepPolicy::default();
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(SWEEP_EVERY_MS as u64)).await;
        let before = check::sweep_snapshot(&world, &policy);
        let now = Timestamp::now();
        world.note("sweep starts");
        match sweeper.run(now, SWEEP_BUDGET).await {
            Ok(report) => {
                world.note(format!("sweep: {report:?}"));
                if report.finished {
                    check::after_sweep(&world, &before);
                }
            }
            Err(e) => world.note(format!("sweep stopped: {e}")),
        }
    }
}

/// Owners retry a failed image now and then (while the schedule is young: a retry at the very
/// end would leave the settling world nothing to judge).
async fn owner_retries(
    world: Arc<World>,
    queues: Arc<SimQueues>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let ctx = Ctx::operator(&world);
    let (images, queue) = (watched(&world.images, &ctx), faulty(&queues, &ctx));
    while !stop.load(std::sync::atomic::Ordering::SeqCst) && world.elapsed() < RETRY_UNTIL_MS {
        tokio::time::sleep(Duration::from_millis(world.range(60_000, 1_800_000))).await;
        let mut failed: Vec<ImageRecord> = world
            .images
            .rows()
            .into_iter()
            .filter(|r| r.processing_status == safelight::Status::Failed)
            .collect();
        failed.sort_by_key(|r| r.image_id);
        if failed.is_empty() {
            continue;
        }
        let row = &failed[world.range(0, failed.len() as u64 - 1) as usize];
        let result = safelight::ops::retry::retry_image(
            &images,
            &queue,
            &row.owner_id,
            row.image_id,
            Timestamp::now(),
        )
        .await;
        world.note(format!(
            "owner retries {}: {:?}",
            row.image_id,
            result.as_ref().map(|r| &r.stages)
        ));
    }
}

/// An operator runs retry-all-failed now and then, following its cursor to the end; a run that
/// says it is done must have left no letter it did not account for.
async fn retry_all(
    world: Arc<World>,
    queues: Arc<SimQueues>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    use safelight::ops::retry_all::{retry_all_failed, RetryAllRequest, RetryLimits, RetryPorts};
    let ctx = Ctx::operator(&world);
    let (images, queue, admin) = (
        watched(&world.images, &ctx),
        faulty(&queues, &ctx),
        faulty(&queues, &ctx),
    );
    while !stop.load(std::sync::atomic::Ordering::SeqCst) && world.elapsed() < RETRY_UNTIL_MS {
        tokio::time::sleep(Duration::from_millis(world.range(600_000, 3_600_000))).await;
        let letters_before = check::dead_letter_ids(&world);
        let mut request = RetryAllRequest {
            dry_run: false,
            cursor: None,
        };
        let mut skipped = 0;
        for _ in 0..50 {
            let report = retry_all_failed(
                RetryPorts {
                    images: &images,
                    queue: &queue,
                    admin: &admin,
                },
                &request,
                RetryLimits {
                    rate_per_sec: 50,
                    budget: Duration::from_secs(20),
                },
            )
            .await;
            world.note(format!("retry-all: {report:?}"));
            let Ok(report) = report else { break };
            skipped += report.skipped;
            if report.done {
                check::after_retry_all(&world, &letters_before, skipped);
                break;
            }
            request.cursor = report.next_cursor;
        }
    }
}

/// Marks the images of messages delivered past the deferral cap (see [`crate::world::Ledger`]).
fn note_capped(world: &World, batch: &[safelight::processing::Message], now: i64) {
    let cap = safelight::processing::Policy::default()
        .max_deferral
        .as_millis() as i64;
    for m in batch {
        let past = m
            .deferred_since
            .is_some_and(|since| now - since.unix_millis() > cap);
        if !past {
            continue;
        }
        for job in safelight::events::parse_jobs(&m.body).unwrap_or_default() {
            world.state().ledger.entry(job.image_id).or_default().capped = true;
        }
    }
}
