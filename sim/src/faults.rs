//! The simulation's fault injection: every port call goes through the shared decorator
//! (`safelight::faults::Faulty`, the one the local stack and the handler tests use) with the
//! simulation's injector ([`Ctx`]): it waits a drawn latency on the virtual clock (sometimes long
//! enough to threaten the invocation's deadline), may kill the calling processor process right
//! there (between two port calls, the way an out-of-memory kill or a host going away does), and
//! may answer with an injected fault (a blip, an outage of the bucket, a refusal) instead of
//! calling the in-memory port. Behind the faults, [`Watched`] watches what the product does
//! through the ports: the row changes (the table's stream, from which notices are derived) and
//! the derivatives written.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use safelight::domain::notice::transitions;
use safelight::faults::{self, Call, InjectedFault, Injector};
use safelight::ports::{
    DeadLetter, DeadLetterReceive, ImageRepository, JobQueue, ObjectMeta, ObjectRef, ObjectStore,
    OwnerPage, Page, PresignedPost, PresignedRequest, QueueAdmin, QueueDepth, QueueError, Receipt,
    RepoError, Requeue, StatusIndex, StatusPage, StoreError, StoredObject, UploadConstraints,
};
use safelight::processing::Message;
use safelight::{ImageId, ImageRecord, ObjectKey, RetryMessage, Stage, Status};
use tokio::sync::watch;

use crate::world::{stage_ix, World};

/// Which dependency a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// S3.
    Bucket,
    /// The images table.
    Images,
    /// The control table.
    Control,
    /// SQS.
    Queue,
    /// A port the simulation does not run (the realtime tables and API, the digest index).
    Other,
}

impl Port {
    fn of(port: faults::Port) -> Self {
        use faults::Port as P;
        match port {
            P::ObjectStore | P::OriginalsSource => Port::Bucket,
            P::ImageRepository | P::AwaitingUploads | P::StatusIndex | P::BackfillRows => {
                Port::Images
            }
            P::ControlStore | P::ThroughputLog | P::MarkerStore => Port::Control,
            P::JobQueue | P::QueueAdmin => Port::Queue,
            P::ConnectionRepository
            | P::NoticeLog
            | P::ConnectionPoster
            | P::DigestIndex
            | P::RateCounter => Port::Other,
        }
    }
}

/// An injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Unavailable,
    Refused,
}

/// One processor process (one Lambda execution environment).
#[derive(Debug)]
pub struct Proc {
    /// For the trace.
    pub id: u64,
    /// The stage it serves.
    pub stage: Stage,
    dead: watch::Sender<bool>,
    /// The messages of the invocation it is running.
    pub batch: Mutex<Vec<Message>>,
}

impl Proc {
    /// A live process.
    pub fn new(id: u64, stage: Stage) -> Self {
        Proc {
            id,
            stage,
            dead: watch::channel(false).0,
            batch: Mutex::new(Vec::new()),
        }
    }

    /// Whether it has died.
    pub fn is_dead(&self) -> bool {
        *self.dead.borrow()
    }

    /// Kills it: every call it makes from now on never returns.
    pub fn kill(&self) {
        self.dead.send_replace(true);
    }

    /// Resolves when it dies.
    pub fn died(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.dead.subscribe();
        async move {
            let _ = rx.wait_for(|dead| *dead).await;
        }
    }

    /// The images of its current batch.
    pub fn batch_images(&self) -> Vec<(ImageId, Message)> {
        let batch = self.batch.lock().unwrap_or_else(|p| p.into_inner()).clone();
        batch
            .into_iter()
            .flat_map(|m| {
                safelight::events::parse_jobs(&m.body)
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |j| (j.image_id, m.clone()))
            })
            .collect()
    }
}

/// Who is calling: a processor process (which can be killed), or an operator-side function.
#[derive(Debug, Clone)]
pub struct Ctx {
    world: Arc<World>,
    proc: Option<Arc<Proc>>,
}

impl Ctx {
    /// Calls made by `proc`.
    pub fn process(world: &Arc<World>, proc: &Arc<Proc>) -> Self {
        Ctx {
            world: Arc::clone(world),
            proc: Some(Arc::clone(proc)),
        }
    }

    /// Calls made by the sweeper, a retry or retry-all.
    pub fn operator(world: &Arc<World>) -> Self {
        Ctx {
            world: Arc::clone(world),
            proc: None,
        }
    }

    async fn enter_port(&self, port: Port, op: &str) -> Result<(), Fault> {
        let w = &self.world;
        let slow = self.proc.is_some() && w.chance(w.scenario.slow);
        let ms = if slow {
            w.range(8_000, 30_000)
        } else {
            w.range(1, 40)
        };
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if let Some(p) = &self.proc {
            if p.is_dead() {
                std::future::pending::<()>().await;
            }
            if w.chance(w.scenario.kill) {
                w.note(format!("kill process {} at {port:?}.{op}", p.id));
                p.kill();
                std::future::pending::<()>().await;
            }
        }
        let fault = if port == Port::Bucket && w.bucket_refuses() {
            Some(Fault::Refused)
        } else if (port == Port::Bucket && w.bucket_down()) || w.chance(w.scenario.blip) {
            Some(Fault::Unavailable)
        } else {
            None
        };
        let Some(fault) = fault else {
            return Ok(());
        };
        if let Some(p) = &self.proc {
            let mut st = w.state();
            for (image, _) in p.batch_images() {
                let ledger = st.ledger.entry(image).or_default();
                ledger.faulted[stage_ix(p.stage)] += 1;
                ledger.queue_faulted |= port == Port::Queue;
                ledger.refused |= fault == Fault::Refused;
            }
        }
        match &self.proc {
            Some(p) => w.note(format!(
                "fault {fault:?} at {port:?}.{op} (process {})",
                p.id
            )),
            None => w.note(format!("fault {fault:?} at {port:?}.{op}")),
        }
        Err(fault)
    }
}

/// The simulation's injector: the shared decorator ([`safelight::faults::Faulty`]) asks it
/// before every port call.
impl Injector for Ctx {
    async fn enter(&self, call: Call<'_>) -> Result<(), InjectedFault> {
        let port = Port::of(call.port);
        self.enter_port(port, call.method)
            .await
            .map_err(|fault| InjectedFault {
                message: injected_message(port, fault).to_owned(),
                refused: fault == Fault::Refused,
            })
    }
}

/// What an injected fault says, as the dependency would.
fn injected_message(port: Port, fault: Fault) -> &'static str {
    match (port, fault) {
        (Port::Bucket, Fault::Unavailable) => "injected: 503 SlowDown",
        (Port::Bucket, Fault::Refused) => "injected: 403 AccessDenied",
        (Port::Queue, _) => "injected: SQS 500",
        (_, Fault::Unavailable) => "injected: throttled",
        (_, Fault::Refused) => "injected: AccessDeniedException",
    }
}

/// A port behind the simulation's latency, kills and faults (the shared decorator with the
/// simulation's injector).
pub type Faulty<T> = faults::Faulty<T, Ctx>;

/// `inner` (kept by the world) as `ctx` calls it.
pub fn faulty<T>(inner: &Arc<T>, ctx: &Ctx) -> Faulty<T> {
    faults::Faulty::shared(Arc::clone(inner), ctx.clone())
}

/// `inner` as `ctx` calls it, watched (see [`Watched`]).
pub fn watched<T>(inner: &Arc<T>, ctx: &Ctx) -> Faulty<Watched<T>> {
    let watched = Watched {
        inner: Arc::clone(inner),
        world: Arc::clone(&ctx.world),
    };
    faults::Faulty::new(watched, ctx.clone())
}

/// What the product does through the bucket and the images table, watched behind the faults:
/// the row changes (the table's stream, from which notices are derived) and the derivatives
/// written.
#[derive(Debug)]
pub struct Watched<T> {
    inner: Arc<T>,
    world: Arc<World>,
}

impl<T: ObjectStore> ObjectStore for Watched<T> {
    async fn put(
        &self,
        key: &ObjectKey,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        // A derivative written for a stage that already completed is work done twice.
        let derivative = key
            .as_str()
            .split('/')
            .nth(1)
            .and_then(|id| id.parse::<ImageId>().ok())
            .map(|id| {
                let stage = if key.as_str().starts_with("thumbnails/") {
                    Stage::Thumbnail
                } else {
                    Stage::Variant
                };
                (id, stage)
            })
            .filter(|_| !key.as_str().starts_with("originals/"));
        if let Some((id, stage)) = derivative {
            let redone = {
                let mut st = self.world.state();
                *st.derivative_puts.entry(key.to_string()).or_default() += 1;
                st.completed.contains(&(id, stage_ix(stage)))
            };
            if redone {
                self.world.violation(format!(
                    "{id}: derivative {key} written again after its {stage} stage completed"
                ));
            }
        }
        self.inner.put(key, body, content_type).await
    }

    async fn get(&self, object: ObjectRef<'_>) -> Result<StoredObject, StoreError> {
        self.inner.get(object).await
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, StoreError> {
        self.inner.head(key).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }

    async fn delete_version(&self, key: &ObjectKey, version: &str) -> Result<(), StoreError> {
        self.world
            .note(format!("delete version {version} of {key}"));
        self.inner.delete_version(key, version).await
    }

    async fn presign_put(
        &self,
        key: &ObjectKey,
        c: &UploadConstraints,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        self.inner.presign_put(key, c, expires_in).await
    }

    async fn presign_post(
        &self,
        key: &ObjectKey,
        c: &UploadConstraints,
        expires_in: Duration,
    ) -> Result<PresignedPost, StoreError> {
        self.inner.presign_post(key, c, expires_in).await
    }
}

/// What the table's stream shows of one row change: notices derived, completions tracked.
fn observe(world: &World, old: Option<&ImageRecord>, new: &ImageRecord) {
    let mut st = world.state();
    for stage in Stage::ALL {
        let key = (new.image_id, stage_ix(stage));
        if new.stage_status(stage) == Status::Completed {
            st.completed.insert(key);
        } else {
            st.completed.remove(&key);
        }
    }
    let ledger = st.ledger.entry(new.image_id).or_default();
    if old.is_some_and(|o| o.processing_status == Status::Failed)
        && new.processing_status != Status::Failed
    {
        // A retry: a new round of notices. (What the image met stays counted: a retry whose
        // send fails puts the old failure back.)
        ledger.notices.clear();
    }
    let mut twice = Vec::new();
    for notice in transitions(old, new) {
        if !ledger.notices.insert(notice) {
            twice.push(notice);
        }
    }
    drop(st);
    for notice in twice {
        world.violation(format!(
            "{}: notice {} derived twice in one round",
            new.image_id,
            notice.as_str()
        ));
    }
}

impl<T: ImageRepository> ImageRepository for Watched<T> {
    async fn create(&self, record: &ImageRecord) -> Result<(), RepoError> {
        self.inner.create(record).await?;
        observe(&self.world, None, record);
        Ok(())
    }

    async fn get(&self, id: ImageId) -> Result<Option<ImageRecord>, RepoError> {
        self.inner.get(id).await
    }

    async fn list_by_owner(&self, page: OwnerPage<'_>) -> Result<Page<ImageRecord>, RepoError> {
        self.inner.list_by_owner(page).await
    }

    async fn update(&self, record: &mut ImageRecord) -> Result<(), RepoError> {
        // The stream's old image: read under the same (single-threaded) step as the write.
        let old = self.inner.get(record.image_id).await?;
        self.inner.update(record).await?;
        observe(&self.world, old.as_ref(), record);
        Ok(())
    }

    async fn delete(&self, id: ImageId) -> Result<(), RepoError> {
        self.inner.delete(id).await
    }
}

impl<T: StatusIndex> StatusIndex for Watched<T> {
    async fn count_by_status(&self, status: Status) -> Result<u64, RepoError> {
        self.inner.count_by_status(status).await
    }

    async fn page_by_status(&self, page: StatusPage<'_>) -> Result<Page<ImageRecord>, RepoError> {
        self.inner.page_by_status(page).await
    }
}

/// Slack on the deferral cap: the port latency between the processor's look at the clock and
/// the send.
const DEFERRAL_SLACK_MS: i64 = 60_000;

/// A deferral (a delayed copy re-sent while the circuit is open) of a message whose deferrals
/// began `age_ms` ago: past the cap, the image should have been worked on (and failed on to the
/// DLQ if the trouble goes on), not kept waiting (invariant 8; reported once per image and stage).
fn deferred_past_cap(world: &World, stage: Stage, body: &str, age_ms: i64) {
    let cap = safelight::processing::Policy::default()
        .max_deferral
        .as_millis() as i64;
    if age_ms <= cap + DEFERRAL_SLACK_MS {
        return;
    }
    for job in safelight::events::parse_jobs(body).unwrap_or_default() {
        let first = world
            .state()
            .deferred_past_cap
            .insert((job.image_id, stage_ix(stage)));
        if first {
            world.violation(format!(
                "{}: its {stage} message deferred by the circuit breaker again after {:.1} h of deferrals (the cap is {:.0} h): a persistent error keeps it waiting instead of failing it on to the DLQ",
                job.image_id,
                age_ms as f64 / 3.6e6,
                cap as f64 / 3.6e6
            ));
        }
    }
}

/// The simulated SQS, as the product's queue ports.
#[derive(Debug)]
pub struct SimQueues {
    world: Arc<World>,
}

impl SimQueues {
    /// SQS of `world`.
    pub fn new(world: &Arc<World>) -> Arc<Self> {
        Arc::new(SimQueues {
            world: Arc::clone(world),
        })
    }
}

impl JobQueue for SimQueues {
    async fn enqueue(&self, message: &RetryMessage) -> Result<(), QueueError> {
        let body =
            serde_json::to_string(message).map_err(|e| QueueError::Unavailable(Box::new(e)))?;
        let now = self.world.now_ms();
        let id = self
            .world
            .state()
            .queues
            .send(message.stage, &body, 0, now, None);
        self.world.note(format!(
            "enqueue {id} {} {}",
            message.stage, message.image_id
        ));
        Ok(())
    }

    async fn delay(&self, receipt: Receipt<'_>, delay: Duration) -> Result<(), QueueError> {
        let Receipt {
            stage,
            handle: receipt_handle,
        } = receipt;
        let now = self.world.now_ms();
        let result = self.world.state().queues.change_visibility(
            stage,
            receipt_handle,
            delay.as_millis() as i64,
            now,
        );
        result.map_err(|e| QueueError::Unavailable(e.into()))
    }

    async fn requeue(&self, copy: &Requeue<'_>) -> Result<(), QueueError> {
        let Requeue {
            stage,
            body,
            delay,
            deferred_since,
        } = *copy;
        let now = self.world.now_ms();
        if let Some(since) = deferred_since.filter(|_| !delay.is_zero()) {
            deferred_past_cap(&self.world, stage, body, now - since.unix_millis());
        }
        let id = self.world.state().queues.send(
            stage,
            body,
            delay.as_millis() as i64,
            now,
            deferred_since,
        );
        self.world.note(format!(
            "requeue {stage} as {id} after {}s",
            delay.as_secs()
        ));
        Ok(())
    }
}

impl QueueAdmin for SimQueues {
    async fn depth(&self, stage: Stage, dead_letters: bool) -> Result<QueueDepth, QueueError> {
        let now = self.world.now_ms();
        Ok(self.world.state().queues.depth(stage, dead_letters, now))
    }

    async fn receive_dead_letters(
        &self,
        request: &DeadLetterReceive,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        let DeadLetterReceive {
            stage,
            max,
            hide_for,
            wait,
        } = *request;
        let long = wait >= Duration::from_secs(1);
        let ready = {
            let now = self.world.now_ms();
            self.world.state().queues.depth(stage, true, now).visible > 0
        };
        if long && !ready {
            // A long poll waits for a letter (or its whole wait).
            tokio::time::sleep(wait.min(Duration::from_secs(20))).await;
        }
        let now = self.world.now_ms();
        let mut st = self.world.state();
        let crate::world::State { queues, rng, .. } = &mut *st;
        Ok(queues.receive_dead(
            stage,
            max as usize,
            hide_for.as_millis() as i64,
            long,
            now,
            rng,
        ))
    }

    async fn delete_dead_letter(&self, receipt: Receipt<'_>) -> Result<(), QueueError> {
        let Receipt {
            stage,
            handle: receipt_handle,
        } = receipt;
        self.world.state().queues.delete_dead(stage, receipt_handle);
        Ok(())
    }

    async fn release_dead_letter(&self, receipt: Receipt<'_>) -> Result<(), QueueError> {
        let Receipt {
            stage,
            handle: receipt_handle,
        } = receipt;
        let now = self.world.now_ms();
        self.world
            .state()
            .queues
            .release_dead(stage, receipt_handle, 0, now)
            .map_err(|e| QueueError::Unavailable(e.into()))
    }
}

/// Notice kinds seen in one round of an image (see [`crate::world::Ledger`]).
pub type NoticeSet = BTreeSet<safelight::domain::notice::NoticeType>;
