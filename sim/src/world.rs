//! The simulated world: the in-memory ports the product code runs on, the SQS model, the
//! scheduler's random source, the fault plan, the ledger of what the world did to each image
//! (kills, faults, uploads) that the invariants judge failures against, and the trace a failing
//! seed prints.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use safelight::testing::{MemoryControl, MemoryImages, MemoryStore};
use safelight::{ImageId, Stage, Timestamp};

use crate::rng::Rng;
use crate::sqs::Queues;

/// Which kinds of trouble a schedule may meet (each can be turned off to shrink a failure).
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Images uploaded.
    pub images: usize,
    /// Chance a port call fails transiently (a blip).
    pub blip: f64,
    /// Chance a processor process dies at a port call (between two calls).
    pub kill: f64,
    /// Chance a port call takes long enough to threaten the invocation's deadline.
    pub slow: f64,
    /// Chance of a duplicate delivery (SQS at-least-once, a repeated invocation, EventBridge).
    pub duplicate: f64,
    /// Chance EventBridge fails to deliver an event to a queue (it goes to the rule's DLQ).
    pub drop_event: f64,
    /// An outage of the bucket: (start, length) in ms from the start, every call fails.
    pub outage: Option<(i64, i64)>,
    /// The bucket refuses every call (access denied, a broken policy): (start, length) in ms
    /// from the start, until someone fixes it.
    pub refusal: Option<(i64, i64)>,
    /// Whether events carry the object's version (AWS: yes; the local emulator: no).
    pub event_versions: bool,
    /// Owners retry failed images now and then.
    pub owner_retries: bool,
    /// An operator runs retry-all-failed now and then.
    pub retry_all: bool,
    /// Some uploads are corrupt, never arrive, arrive late or are written twice.
    pub odd_uploads: bool,
}

impl Scenario {
    /// The scenario for a seed: a mix of every kind of trouble, drawn from the seed.
    pub fn for_seed(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0x5EED);
        let outage = rng.chance(0.35).then(|| {
            let start = rng.range(0, 600_000) as i64;
            // Up to 40 minutes: past the presigned lifetime + grace, the sweeper's horizon.
            let len = rng.range(60_000, 2_400_000) as i64;
            (start, len)
        });
        Scenario {
            images: rng.range(2, 8) as usize,
            blip: [0.0, 0.01, 0.04][rng.pick(3)],
            kill: [0.0, 0.001, 0.005][rng.pick(3)],
            slow: [0.0, 0.002, 0.01][rng.pick(3)],
            duplicate: [0.0, 0.01, 0.05][rng.pick(3)],
            drop_event: [0.0, 0.0, 0.05][rng.pick(3)],
            outage,
            refusal: rng.chance(0.08).then(|| {
                (
                    rng.range(0, 300_000) as i64,
                    rng.range(600_000, 8 * 3_600_000) as i64,
                )
            }),
            event_versions: rng.chance(0.5),
            owner_retries: rng.chance(0.5),
            retry_all: rng.chance(0.3),
            odd_uploads: rng.chance(0.6),
        }
    }

    /// The scenario's simpler neighbours, for shrinking a failure: one kind of trouble fewer,
    /// or fewer images.
    pub fn simpler(&self) -> Vec<Scenario> {
        let mut out = Vec::new();
        let mut push = |f: &dyn Fn(&mut Scenario)| {
            let mut s = self.clone();
            f(&mut s);
            if &s != self {
                out.push(s);
            }
        };
        push(&|s| s.images = (s.images / 2).max(1));
        push(&|s| s.images = s.images.saturating_sub(1).max(1));
        push(&|s| s.blip = 0.0);
        push(&|s| s.kill = 0.0);
        push(&|s| s.slow = 0.0);
        push(&|s| s.duplicate = 0.0);
        push(&|s| s.drop_event = 0.0);
        push(&|s| s.outage = None);
        push(&|s| s.refusal = None);
        push(&|s| s.owner_retries = false);
        push(&|s| s.retry_all = false);
        push(&|s| s.odd_uploads = false);
        out
    }
}

/// How an image's upload goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// Arrives soon after the row is made.
    Normal,
    /// Arrives near the end of the presigned lifetime.
    Late,
    /// Never arrives.
    Never,
    /// Arrives, but the bytes are corrupt (of the declared type and size).
    Corrupt,
    /// Arrives, then a second write of the same size lands on the key (a re-sent POST form).
    Twice,
}

/// What the world did to one image (reset by a retry): what the invariants judge its outcome by.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// The upload plan.
    pub upload: Option<Upload>,
    /// When the original landed (ms), if it did.
    pub stored_at: Option<i64>,
    /// The version the upload made (the one the image is).
    pub first_version: Option<String>,
    /// Per stage: attempts that were killed or timed out while holding this image.
    pub abandoned: [u32; 2],
    /// Per stage: attempts that met an injected fault while holding this image.
    pub faulted: [u32; 2],
    /// Per stage: invocations with this image in their batch that were killed or timed out.
    pub killed: [u32; 2],
    /// The image met a refusal (access denied) at some point.
    pub refused: bool,
    /// A queue call failed while a process held the image (a deferral may not have been sent).
    pub queue_faulted: bool,
    /// A message of the image was delivered after its deferrals had gone on longer than the
    /// cap (it is worked on, and may fail, instead of waiting).
    pub capped: bool,
    /// Per version written to the key: how many stages' "Object Created" events of that write
    /// EventBridge never delivered (2: no processor could learn of the write).
    pub lost_events: BTreeMap<String, u32>,
    /// The image was deferred by an open circuit at some point.
    pub deferred: bool,
    /// Notices derived from its row changes in this round (since its last retry).
    pub notices: crate::faults::NoticeSet,
}

/// One line of the schedule, for the trace a failure prints.
#[derive(Debug, Clone)]
pub struct Event {
    /// Virtual ms since the start.
    pub at: i64,
    /// What happened.
    pub what: String,
}

/// Everything mutable in the world but the product's own fakes.
#[derive(Debug)]
pub struct State {
    /// The scheduler's random source.
    pub rng: Rng,
    /// SQS.
    pub queues: Queues,
    /// Per image.
    pub ledger: BTreeMap<ImageId, Ledger>,
    /// Events EventBridge could not deliver (the rule's target DLQ).
    pub undelivered: Vec<String>,
    /// The schedule so far.
    pub trace: Vec<Event>,
    /// Invariant violations seen while running (the checks at quiescence add theirs).
    pub violations: Vec<String>,
    /// Processing invocations running now.
    pub running: usize,
    /// EventBridge deliveries not yet made.
    pub in_transit: usize,
    /// Uploads not yet made.
    pub uploads_pending: usize,
    /// Derivative keys written, and the stage's status when they were.
    pub derivative_puts: BTreeMap<String, u32>,
    /// Images whose stage completed, by stage: a derivative written after that is work redone.
    pub completed: BTreeSet<(ImageId, usize)>,
    /// Images (by stage) already reported deferred past the cap (reported once).
    pub deferred_past_cap: BTreeSet<(ImageId, usize)>,
}

/// The world every actor shares.
#[derive(Debug)]
pub struct World {
    /// The start of the simulation on the virtual clock (Unix ms).
    pub epoch_ms: i64,
    /// The scenario.
    pub scenario: Scenario,
    /// The bucket.
    pub store: Arc<MemoryStore>,
    /// The images table.
    pub images: Arc<MemoryImages>,
    /// The control table.
    pub control: Arc<MemoryControl>,
    /// Print the trace as it happens (`SIM_LIVE=1`, for a schedule that does not end).
    live: bool,
    state: Mutex<State>,
}

impl World {
    /// A world for one seed.
    pub fn new(seed: u64, scenario: Scenario, epoch_ms: i64) -> Self {
        World {
            epoch_ms,
            scenario,
            store: Arc::default(),
            images: Arc::default(),
            control: Arc::default(),
            live: std::env::var_os("SIM_LIVE").is_some(),
            state: Mutex::new(State {
                rng: Rng::new(seed),
                queues: Queues::default(),
                ledger: BTreeMap::new(),
                undelivered: Vec::new(),
                trace: Vec::new(),
                violations: Vec::new(),
                running: 0,
                in_transit: 0,
                uploads_pending: 0,
                derivative_puts: BTreeMap::new(),
                completed: BTreeSet::new(),
                deferred_past_cap: BTreeSet::new(),
            }),
        }
    }

    /// The state, locked (never held across an await).
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Virtual Unix ms now.
    pub fn now_ms(&self) -> i64 {
        Timestamp::now().unix_millis()
    }

    /// Virtual ms since the start.
    pub fn elapsed(&self) -> i64 {
        self.now_ms() - self.epoch_ms
    }

    /// Adds a line to the trace.
    pub fn note(&self, what: impl Into<String>) {
        let at = self.elapsed();
        let what = what.into();
        if self.live {
            eprintln!("{:>10.3}s  {what}", at as f64 / 1000.0);
        }
        self.state().trace.push(Event { at, what });
    }

    /// Records an invariant violation seen while running.
    pub fn violation(&self, what: impl Into<String>) {
        let what = what.into();
        self.note(format!("VIOLATION {what}"));
        self.state().violations.push(what);
    }

    /// A random draw.
    pub fn chance(&self, p: f64) -> bool {
        self.state().rng.chance(p)
    }

    /// A random whole number in `lo..=hi`.
    pub fn range(&self, lo: u64, hi: u64) -> u64 {
        self.state().rng.range(lo, hi)
    }

    /// Whether the bucket is in an outage at this moment.
    pub fn bucket_down(&self) -> bool {
        let t = self.elapsed();
        self.scenario
            .outage
            .is_some_and(|(start, len)| t >= start && t < start + len)
    }

    /// Whether the bucket refuses calls at this moment.
    pub fn bucket_refuses(&self) -> bool {
        let t = self.elapsed();
        self.scenario
            .refusal
            .is_some_and(|(start, len)| t >= start && t < start + len)
    }
}

/// The index of a stage in per-stage arrays.
pub fn stage_ix(stage: Stage) -> usize {
    match stage {
        Stage::Thumbnail => 0,
        Stage::Variant => 1,
    }
}
