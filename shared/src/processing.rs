//! The processing pipeline shared by the `thumbnail` and `variant` functions: one SQS batch in,
//! the ids of the messages to keep out. Generic over the ports; no AWS types.
//!
//! Per message: parse the job(s) → ask the circuit breaker (open: re-send a delayed copy and
//! drop the original, so no receive is used up) → take the (stage, image) lease (held by
//! someone else: a duplicate delivery, dropped) → `pending|processing -> processing` → fetch the
//! original, check its bytes are the declared type → render every spec from one decode → store
//! the derivatives under deterministic keys → `processing -> completed`.
//!
//! Failures: permanent ones (corrupt, unsupported, too large, type mismatch, original gone) mark
//! the stage failed with a reason and drop the message. Transient ones are counted by the
//! breaker, noted on the row, and retried after `min(cap, base·2^(receive-1))` with full jitter;
//! on the last receive the stage is marked failed before SQS moves the message to the DLQ. A
//! panic in one message is that message's failure only.
//!
//! Idempotency: derivative keys depend only on (image, spec), so a repeat writes the same
//! objects; row changes are conditional writes on `version`, re-read and re-decided on conflict,
//! and a completed stage is never redone. A crash between storing derivatives and completing the
//! row leaves the stage `processing`; the redelivered message finishes it.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt as _;
use tracing::Instrument as _;

use crate::breaker::{Admission, BreakerConfig};
use crate::domain::{
    parse_jobs, ContentType, Derivative, ErrorKind, ImageRecord, Job, NewImage, ObjectKey, Stage,
    StageResult, Status, Timestamp, TransitionError, UploadState,
};
use crate::engine::{self, Limits, Spec};
use crate::ports::{ControlStore, ImageRepository, JobQueue, ObjectStore, RepoError, StoreError};
use crate::retry::{is_last_receive, Backoff, MAX_RECEIVES};

/// A short random pause after losing a conditional write, so racing writers spread out.
async fn contention_pause(attempt: u32) {
    let ms = rand::random::<u64>() % (5 * u64::from(attempt.min(10)) + 5);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// One received SQS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// SQS message id (the batch-failure identifier).
    pub message_id: String,
    /// Receipt handle, for visibility changes.
    pub receipt_handle: String,
    /// The body: an S3, EventBridge or Safelight event.
    pub body: String,
    /// `ApproximateReceiveCount` (1 on the first receive).
    pub receive_count: u32,
}

/// Tunables of the pipeline.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Backoff for transient failures.
    pub backoff: Backoff,
    /// Circuit-breaker settings.
    pub breaker: BreakerConfig,
    /// How long a worker holds the (stage, image) lease; at least the function timeout.
    pub lease: Duration,
    /// Attempts at a conditional row write before giving up as transient.
    pub write_attempts: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            backoff: Backoff::default(),
            breaker: BreakerConfig::default(),
            lease: Duration::from_secs(60),
            write_attempts: 32,
        }
    }
}

/// Why a job did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobFailure {
    /// A dependency failed (throttling, 5xx, timeouts, injected faults): retried with backoff
    /// and counted by the circuit breaker.
    #[error("{0}")]
    Transient(String),
    /// Retried with backoff like a transient failure, but not a dependency's fault (a lost
    /// write race, an interrupted render), so the circuit breaker does not count it.
    #[error("{0}")]
    Retryable(String),
    /// Retrying will not help; the reason is for the user.
    #[error("{message}")]
    Permanent {
        /// `permanent` or `rejected`.
        kind: ErrorKind,
        /// Readable reason.
        message: String,
    },
}

impl JobFailure {
    /// Whether the circuit breaker counts this failure.
    pub fn counts_against_breaker(&self) -> bool {
        matches!(self, JobFailure::Transient(_))
    }
}

impl From<RepoError> for JobFailure {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Conflict => JobFailure::Retryable(e.to_string()),
            _ => JobFailure::Transient(e.to_string()),
        }
    }
}

impl From<StoreError> for JobFailure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => JobFailure::Permanent {
                kind: ErrorKind::Permanent,
                message: "the original file no longer exists".to_owned(),
            },
            StoreError::Unavailable(_) => JobFailure::Transient(e.to_string()),
        }
    }
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Done with it: SQS deletes it.
    Ack,
    /// Keep it: SQS redelivers it after its (changed) visibility timeout.
    Retry,
}

/// The pipeline for one stage, over its ports.
#[derive(Debug)]
pub struct Processor<S, R, Q, C> {
    stage: Stage,
    specs: Vec<Spec>,
    limits: Limits,
    policy: Policy,
    store: S,
    images: R,
    queue: Q,
    control: C,
}

/// Adapters a processor runs on.
#[derive(Debug)]
pub struct Ports<S, R, Q, C> {
    /// The bucket.
    pub store: S,
    /// The images table.
    pub images: R,
    /// The stage's queue.
    pub queue: Q,
    /// The control table.
    pub control: C,
}

impl<S: ObjectStore, R: ImageRepository, Q: JobQueue, C: ControlStore> Processor<S, R, Q, C> {
    /// A processor for `stage` rendering `specs`.
    pub fn new(
        stage: Stage,
        specs: Vec<Spec>,
        limits: Limits,
        policy: Policy,
        ports: Ports<S, R, Q, C>,
    ) -> Self {
        Processor {
            stage,
            specs,
            limits,
            policy,
            store: ports.store,
            images: ports.images,
            queue: ports.queue,
            control: ports.control,
        }
    }

    /// Processes a batch; returns the ids of the messages that must stay in the queue.
    pub async fn handle_batch(&self, messages: &[Message]) -> Vec<String> {
        let mut keep = Vec::new();
        for m in messages {
            let span = tracing::info_span!(
                "message",
                stage = %self.stage,
                message_id = %m.message_id,
                receive_count = m.receive_count,
                image_id = tracing::field::Empty
            );
            // Boxed: keeps the future's type shallow enough for the compiler's layout queries.
            let outcome =
                AssertUnwindSafe(Box::pin(self.handle_message(m)).instrument(span.clone()))
                    .catch_unwind()
                    .await;
            let verdict = match outcome {
                Ok(v) => v,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    span.in_scope(|| tracing::error!(panic = %what, "processing panicked; the message will be retried"));
                    Verdict::Retry
                }
            };
            if verdict == Verdict::Retry {
                keep.push(m.message_id.clone());
            }
        }
        keep
    }

    async fn handle_message(&self, m: &Message) -> Verdict {
        let jobs = match parse_jobs(&m.body) {
            Ok(jobs) => jobs,
            Err(e) => {
                // Not ours to drop silently: it goes to the DLQ after its receives, for a human.
                tracing::error!(error = %e, "unreadable message");
                self.back_off(m).await;
                return Verdict::Retry;
            }
        };
        if jobs.is_empty() {
            tracing::info!("no originals in this message (test event or other prefix); skipped");
            return Verdict::Ack;
        }

        let probing = match self.admit().await {
            Ok(Admission::Proceed) => false,
            Ok(Admission::Probe) => {
                tracing::info!("circuit half-open: this message is the probe");
                true
            }
            Ok(Admission::DeferUntil(until)) => return self.defer(m, until).await,
            Err(e) => {
                tracing::warn!(error = %e, "circuit breaker unreadable; retrying later");
                self.back_off(m).await;
                return Verdict::Retry;
            }
        };

        let mut verdict = Verdict::Ack;
        for job in &jobs {
            tracing::Span::current().record("image_id", tracing::field::display(job.image_id));
            match self.process(job, m).await {
                Ok(()) => {
                    if probing {
                        self.breaker_success().await;
                    }
                }
                Err(JobFailure::Permanent { kind, message }) => {
                    // The file was bad, the dependencies answered: a probe that gets here passed.
                    if probing {
                        self.breaker_success().await;
                    }
                    tracing::warn!(error_kind = kind.as_str(), reason = %message, "permanent failure; not retried");
                    if let Err(e) = self.finish_failed(job, kind, &message).await {
                        tracing::error!(error = %e, "could not record the failure; retrying");
                        self.back_off(m).await;
                        verdict = Verdict::Retry;
                    }
                }
                Err(failure @ (JobFailure::Transient(_) | JobFailure::Retryable(_))) => {
                    verdict = Verdict::Retry;
                    if failure.counts_against_breaker() {
                        self.breaker_failure().await;
                    }
                    let reason = failure.to_string();
                    if is_last_receive(m.receive_count) {
                        let message = format!("gave up after {MAX_RECEIVES} attempts: {reason}");
                        tracing::error!(reason = %reason, "last attempt failed; marking failed before the DLQ");
                        if let Err(e) = self
                            .finish_failed(job, ErrorKind::Transient, &message)
                            .await
                        {
                            tracing::error!(error = %e, "could not mark the image failed");
                        }
                    } else {
                        tracing::warn!(reason = %reason, "transient failure; backing off");
                        self.note_transient(job, &reason).await;
                        self.back_off(m).await;
                    }
                }
            }
        }
        verdict
    }

    /// Hides the message for the backoff delay of its receive count.
    async fn back_off(&self, m: &Message) {
        let delay = self.policy.backoff.random_delay(m.receive_count);
        if let Err(e) = self.queue.delay(self.stage, &m.receipt_handle, delay).await {
            // The queue's own visibility timeout then applies: slower, but nothing is lost.
            tracing::warn!(error = %e, "could not set the backoff visibility");
        }
    }

    /// The circuit is open: re-send the message as a delayed copy and drop the original.
    async fn defer(&self, m: &Message, until: Timestamp) -> Verdict {
        let wait_ms = until.unix_millis() - Timestamp::now().unix_millis();
        // Spread the herd over a few seconds after the cool-down.
        let jitter_ms = (rand::random::<f64>() * 5000.0) as i64;
        let delay =
            Duration::from_millis(u64::try_from(wait_ms + jitter_ms).unwrap_or(0).max(1000));
        match self.queue.requeue(self.stage, &m.body, delay).await {
            Ok(()) => {
                tracing::info!(
                    delay_secs = delay.as_secs(),
                    "circuit open; message deferred"
                );
                Verdict::Ack
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not defer; keeping the message");
                self.back_off(m).await;
                Verdict::Retry
            }
        }
    }

    /// Asks the breaker; takes the probe with a conditional write when it is due.
    async fn admit(&self) -> Result<Admission, RepoError> {
        for attempt in 0..self.policy.write_attempts {
            let (mut breaker, version) = self.control.load_breaker(self.stage).await?;
            let (admission, changed) = breaker.admit(Timestamp::now(), &self.policy.breaker);
            if !changed {
                return Ok(admission);
            }
            match self
                .control
                .save_breaker(self.stage, &breaker, version)
                .await
            {
                Ok(()) => return Ok(admission),
                // Someone else moved the breaker (maybe took the probe): decide again.
                Err(RepoError::Conflict) => contention_pause(attempt).await,
                Err(e) => return Err(e),
            }
        }
        Err(RepoError::Conflict)
    }

    async fn breaker_failure(&self) {
        let now = Timestamp::now();
        for attempt in 0..self.policy.write_attempts {
            let result = async {
                let (mut breaker, version) = self.control.load_breaker(self.stage).await?;
                let opened = breaker.record_failure(now, &self.policy.breaker);
                self.control
                    .save_breaker(self.stage, &breaker, version)
                    .await?;
                Ok::<_, RepoError>(opened)
            }
            .await;
            match result {
                Ok(true) => {
                    tracing::warn!("circuit opened");
                    return;
                }
                Ok(false) => return,
                Err(RepoError::Conflict) => contention_pause(attempt).await,
                Err(e) => {
                    tracing::warn!(error = %e, "could not record the failure in the circuit breaker");
                    return;
                }
            }
        }
    }

    async fn breaker_success(&self) {
        for attempt in 0..self.policy.write_attempts {
            let result = async {
                let (mut breaker, version) = self.control.load_breaker(self.stage).await?;
                if breaker.record_success() {
                    self.control
                        .save_breaker(self.stage, &breaker, version)
                        .await?;
                    tracing::info!("circuit closed by a successful probe");
                }
                Ok::<_, RepoError>(())
            }
            .await;
            match result {
                Err(RepoError::Conflict) => contention_pause(attempt).await,
                Err(e) => return tracing::warn!(error = %e, "could not close the circuit"),
                Ok(()) => return,
            }
        }
    }

    /// Re-reads the row and applies `change` until a conditional write succeeds. `change`
    /// returns `Ok(false)` when nothing needs writing.
    async fn modify(
        &self,
        job: &Job,
        change: impl Fn(&mut ImageRecord) -> Result<bool, TransitionError>,
    ) -> Result<Option<ImageRecord>, JobFailure> {
        for attempt in 0..self.policy.write_attempts {
            let Some(mut record) = self.images.get(job.image_id).await? else {
                return Ok(None);
            };
            let before = record.clone();
            match change(&mut record) {
                Ok(false) => return Ok(Some(before)),
                Ok(true) => {}
                Err(e) => {
                    return Err(JobFailure::Retryable(format!(
                        "status changed under us: {e}"
                    )));
                }
            }
            match self.images.update(&mut record).await {
                Ok(()) => return Ok(Some(record)),
                Err(RepoError::Conflict) => contention_pause(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(JobFailure::Retryable(
            "the image row kept changing concurrently".into(),
        ))
    }

    async fn note_transient(&self, job: &Job, reason: &str) {
        let stage = self.stage;
        let result = self
            .modify(job, |r| {
                if r.stage_status(stage) != Status::Processing {
                    return Ok(false);
                }
                r.note_transient(stage, reason, Timestamp::now())
                    .map(|()| true)
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not note the transient failure on the row");
        }
    }

    async fn finish_failed(
        &self,
        job: &Job,
        kind: ErrorKind,
        message: &str,
    ) -> Result<(), JobFailure> {
        let stage = self.stage;
        self.modify(job, |r| {
            if r.stage_status(stage).is_terminal() {
                return Ok(false);
            }
            r.fail(stage, kind, message, Timestamp::now())
                .map(|()| true)
        })
        .await?;
        Ok(())
    }

    /// Reads the row, adopting an original that has none: an object under
    /// `originals/{owner}/{image_id}` with no row (e.g. put there by a migration) becomes a new
    /// image of the key's owner, typed by its magic bytes.
    async fn row_or_adopt(
        &self,
        job: &Job,
        original: &mut Option<Vec<u8>>,
    ) -> Result<ImageRecord, JobFailure> {
        if let Some(r) = self.images.get(job.image_id).await? {
            return Ok(r);
        }
        let bytes = self.store.get(&job.key).await?;
        let Some(content_type) = ContentType::sniff(&bytes) else {
            return Err(JobFailure::Permanent {
                kind: ErrorKind::Rejected,
                message: "an original without a row is not a recognisable image; ignored".into(),
            });
        };
        let record = ImageRecord::new(
            NewImage {
                image_id: job.image_id,
                owner_id: job.owner.clone(),
                filename: None,
                content_type,
                byte_size: bytes.len() as u64,
                sha256: None,
                upload_state: UploadState::Stored,
            },
            Timestamp::now(),
        );
        tracing::info!(owner = %job.owner, "adopting an original that had no row");
        match self.images.create(&record).await {
            Ok(()) | Err(RepoError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
        *original = Some(bytes);
        self.images
            .get(job.image_id)
            .await?
            .ok_or_else(|| JobFailure::Retryable("the adopted row vanished".into()))
    }

    async fn process(&self, job: &Job, m: &Message) -> Result<(), JobFailure> {
        let stage = self.stage;
        let mut original = None;
        let row = self.row_or_adopt(job, &mut original).await?;
        if row.owner_id != job.owner {
            return Err(JobFailure::Permanent {
                kind: ErrorKind::Rejected,
                message: "the original's key does not belong to the image's owner".into(),
            });
        }
        match row.stage_status(stage) {
            Status::Completed => {
                tracing::info!("already completed; duplicate delivery dropped");
                return Ok(());
            }
            Status::Failed => {
                tracing::info!("already failed for good; duplicate delivery dropped");
                return Ok(());
            }
            Status::Pending | Status::Processing => {}
        }

        let now = Timestamp::now();
        let until =
            Timestamp::from_unix_millis(now.unix_millis() + self.policy.lease.as_millis() as i64);
        if !self
            .control
            .acquire_lease(stage, job.image_id, &m.message_id, until, now)
            .await?
        {
            tracing::info!("another worker holds this image's lease; duplicate delivery dropped");
            return Ok(());
        }
        let result = self.run_stage(job, original).await;
        if let Err(e) = self
            .control
            .release_lease(stage, job.image_id, &m.message_id)
            .await
        {
            tracing::warn!(error = %e, "could not release the lease; it expires by itself");
        }
        result
    }

    async fn run_stage(&self, job: &Job, original: Option<Vec<u8>>) -> Result<(), JobFailure> {
        let stage = self.stage;
        let begun = self
            .modify(job, |r| match r.stage_status(stage) {
                Status::Completed | Status::Failed => Ok(false),
                _ => {
                    if r.upload_state == UploadState::AwaitingUpload {
                        r.upload_state = UploadState::Stored;
                    }
                    r.begin(stage, Timestamp::now()).map(|()| true)
                }
            })
            .await?;
        let Some(row) = begun else {
            return Err(JobFailure::Retryable("the image row disappeared".into()));
        };
        if row.stage_status(stage) != Status::Processing {
            return Ok(());
        }

        let bytes = match original {
            Some(b) => b,
            None => self.store.get(&job.key).await?,
        };
        match ContentType::sniff(&bytes) {
            Some(actual) if actual == row.content_type => {}
            Some(actual) => {
                return Err(JobFailure::Permanent {
                    kind: ErrorKind::Rejected,
                    message: format!(
                        "the uploaded file is {actual}, not the declared {}",
                        row.content_type
                    ),
                })
            }
            None => {
                return Err(JobFailure::Permanent {
                    kind: ErrorKind::Rejected,
                    message: format!(
                        "the uploaded file is not a recognisable image (declared {})",
                        row.content_type
                    ),
                })
            }
        }

        let specs = self.specs.clone();
        let limits = self.limits;
        let rendered = tokio::task::spawn_blocking(move || engine::render(&bytes, &specs, &limits))
            .await
            .map_err(|e| JobFailure::Retryable(format!("rendering was interrupted: {e}")))?
            .map_err(|e| JobFailure::Permanent {
                kind: ErrorKind::Permanent,
                message: e.to_string(),
            })?;

        let mut derivatives = std::collections::BTreeMap::new();
        for out in rendered.outputs {
            let file = out.file_name();
            let key = match stage {
                Stage::Thumbnail => {
                    ObjectKey::thumbnail(job.image_id, &out.name, out.format.extension())
                }
                Stage::Variant => {
                    ObjectKey::variant(job.image_id, &out.name, out.format.extension())
                }
            };
            let bytes = out.bytes.len() as u64;
            self.store
                .put(&key, out.bytes, out.format.content_type())
                .await?;
            derivatives.insert(
                file,
                Derivative {
                    key,
                    width: out.width,
                    height: out.height,
                    bytes,
                    format: out.format.as_str().to_owned(),
                },
            );
        }
        let result = StageResult {
            derivatives,
            source_size: Some((rendered.source.width, rendered.source.height)),
            placeholder: if stage == Stage::Thumbnail {
                rendered.placeholder
            } else {
                None
            },
        };
        self.modify(job, |r| match r.stage_status(stage) {
            Status::Processing => r
                .complete(stage, result.clone(), Timestamp::now())
                .map(|()| true),
            // Completed by a concurrent duplicate, or failed by a last-receive elsewhere.
            _ => Ok(false),
        })
        .await?;
        tracing::info!("stage completed");
        Ok(())
    }
}

impl<S, R, Q, C> Processor<S, R, Q, C> {
    /// The ports (tests inspect them).
    pub fn ports(&self) -> (&S, &R, &Q, &C) {
        (&self.store, &self.images, &self.queue, &self.control)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dependency_failures_count_against_the_breaker() {
        assert!(JobFailure::from(RepoError::Unavailable("timeout".into())).counts_against_breaker());
        assert!(JobFailure::from(StoreError::Unavailable("503".into())).counts_against_breaker());
        let race = JobFailure::from(RepoError::Conflict);
        assert_eq!(
            race,
            JobFailure::Retryable("the image row changed concurrently".into())
        );
        assert!(!race.counts_against_breaker());
        let gone = JobFailure::from(StoreError::NotFound("k".into()));
        assert!(matches!(
            gone,
            JobFailure::Permanent {
                kind: ErrorKind::Permanent,
                ..
            }
        ));
        assert!(!gone.counts_against_breaker());
    }
}
