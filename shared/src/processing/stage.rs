//! [`StageWork`]: one job of a stage, over the bucket: check the row and the lease, fetch the
//! original, check its bytes against the row (declared type and size), render every spec from
//! one decode, store the derivatives under deterministic keys, complete the stage. The row
//! writes go through the [`RowWriter`], the lease through the [`Gate`].

use std::collections::BTreeMap;

use crate::domain::{
    Derivative, ErrorKind, ImageRecord, Job, ObjectKey, Origin, Stage, StageResult, Status,
    Timestamp, UploadState,
};
use crate::engine::{self, Limits, Spec};
use crate::metrics;
use crate::ports::{ControlStore, Holder, ImageRepository, Lease, ObjectStore, StoredObject};

use super::gate::Gate;
use super::original;
use super::rows::RowWriter;
use super::JobFailure;

/// Whether a job that ended well touched its dependencies (what a half-open probe needs to know).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// The stage ran: the original was read and the outcome written.
    Yes,
    /// Nothing to do (already ended, a duplicate, someone else's lease).
    Skipped,
    /// A duplicate delivery of this very message while its attempt's lease is live (until
    /// `until`): the live attempt decides; come back after it.
    Busy {
        /// When the live attempt's lease runs out.
        until: Timestamp,
    },
}

/// The reason a stage fails with when two attempts in a row died mid-way.
pub const CRASHED: &str = "processing crashed twice: the process died while working on this \
                           image, twice; retry it, or check the file";

/// The reason a stage fails with when it ran out of the invocation's time twice.
pub const TIMED_OUT: &str = "processing ran out of time twice: this image takes longer than the \
                             function's time limit allows here; retry it later, or send a smaller file";

/// The work of one stage: what it renders, within which limits, and the bucket it reads the
/// originals from and stores the derivatives in.
#[derive(Debug)]
pub struct StageWork<S> {
    stage: Stage,
    specs: Vec<Spec>,
    limits: Limits,
    store: S,
}

impl<S: ObjectStore> StageWork<S> {
    /// `stage` rendering `specs` within `limits`, over `store`.
    pub fn new(stage: Stage, specs: Vec<Spec>, limits: Limits, store: S) -> Self {
        StageWork {
            stage,
            specs,
            limits,
            store,
        }
    }

    /// Runs the stage for `job`, as `holder` (a receive of its message), unless it has ended,
    /// is leased elsewhere, or crashed before.
    pub async fn run<R: ImageRepository, C: ControlStore>(
        &self,
        job: &Job,
        holder: &Holder<'_>,
        rows: RowWriter<'_, R>,
        gate: &Gate<C>,
    ) -> Result<Ran, JobFailure> {
        let stage = self.stage;
        let (row, original) = original::row_or_adopt(&self.store, rows, job).await?;
        if row.owner_id != job.owner {
            return Err(JobFailure::permanent(
                ErrorKind::Rejected,
                "the original's key does not belong to the image's owner",
            ));
        }
        if let Some(pinned) = row.original_version.clone() {
            if original::keep_pinned_current(&self.store, job, &pinned).await? {
                return Ok(Ran::Skipped);
            }
        }
        match row.stage_status(stage) {
            Status::Completed => {
                tracing::info!("already completed; duplicate delivery dropped");
                return Ok(Ran::Skipped);
            }
            Status::Failed => {
                tracing::info!("already failed for good; duplicate delivery dropped");
                return Ok(Ran::Skipped);
            }
            Status::Pending | Status::Processing => {}
        }

        match gate.take_lease(job.image_id, holder).await? {
            Lease::HeldElsewhere => {
                tracing::info!(
                    "another worker holds this image's lease; duplicate delivery dropped"
                );
                return Ok(Ran::Skipped);
            }
            Lease::Running { until } => {
                tracing::info!(
                    "this message's own attempt is still running; duplicate delivery set aside"
                );
                return Ok(Ran::Busy { until });
            }
            Lease::Abandoned {
                attempts: 1,
                ran_out_of_time,
            } => {
                // Its previous attempt never ended: it ran out of the invocation's time, or its
                // process died, maybe for another image's sake (an out-of-memory kill, a host
                // going away), or only its release failed. The file may be fine: the batch gave
                // this message the invocation to itself (see `handle_batch_until`); one more try.
                tracing::warn!(
                    ran_out_of_time,
                    "the previous attempt never ended; trying once more, alone"
                );
            }
            Lease::Abandoned {
                attempts,
                ran_out_of_time,
            } => {
                // Two attempts in a row never ended: running it again would most likely take
                // the process (and a batch with it) down again.
                let reason = if ran_out_of_time { TIMED_OUT } else { CRASHED };
                tracing::error!(
                    attempts,
                    ran_out_of_time,
                    "the previous attempt at this message died; failing the stage"
                );
                let failed = rows
                    .finish_failed(stage, job.image_id, ErrorKind::Permanent, reason)
                    .await;
                gate.release_lease(job.image_id, holder).await;
                return failed.map(|()| Ran::Yes).map_err(JobFailure::from);
            }
            Lease::Taken => {}
        }
        let result = self.render_and_store(job, &row, original, rows).await;
        // A completed stage keeps its lease until it runs out (the control table's TTL then
        // removes it): a completed stage is never reset, and every reader of the lease checks
        // the row first, so a release would be a write per stage that decides nothing. Any
        // other ending releases it: a failed stage can be retried by its owner at once.
        if !matches!(result, Ok(Status::Completed)) {
            gate.release_lease(job.image_id, holder).await;
        }
        result.map(|_| Ran::Yes)
    }

    /// Begins the stage on the row, checks and renders the original, stores the derivatives and
    /// completes the stage; returns the stage's status as the row has it at the end.
    async fn render_and_store<R: ImageRepository>(
        &self,
        job: &Job,
        read: &ImageRecord,
        original: Option<StoredObject>,
        rows: RowWriter<'_, R>,
    ) -> Result<Status, JobFailure> {
        let stage = self.stage;
        // The version to pin if the row has none yet: the event's, or the adopted object's.
        let candidate = match (&job.origin, &original) {
            _ if read.original_version.is_some() => None,
            (_, Some(adopted)) => adopted.version.clone(),
            (Origin::Stored { version: Some(v) }, None) => Some(v.clone()),
            _ => None,
        };
        // From the row just read: no second read unless another writer got in between.
        let begun = rows
            .modify_from(read.clone(), |r| match r.stage_status(stage) {
                Status::Completed | Status::Failed => Ok(false),
                _ => {
                    if r.upload_state == UploadState::AwaitingUpload {
                        r.upload_state = UploadState::Stored;
                    }
                    if r.original_version.is_none() {
                        r.original_version.clone_from(&candidate);
                    }
                    r.begin(stage, Timestamp::now()).map(|()| true)
                }
            })
            .await?;
        let Some(row) = begun else {
            return Err(JobFailure::retryable("the image row disappeared"));
        };
        if row.stage_status(stage) != Status::Processing {
            return Ok(row.stage_status(stage));
        }
        if let Some(pinned) = &row.original_version {
            // Another attempt pinned another version first (a race on AWS): this event's write
            // is not the image.
            if let Origin::Stored { version: Some(v) } = &job.origin {
                if v != pinned {
                    self.store.delete_version(&job.key, v).await?;
                }
            }
        }

        let (bytes, row) = original::pinned_bytes(&self.store, rows, job, row, original).await?;
        if let Err(mismatch) = row.content_type.check_bytes(&bytes) {
            return Err(JobFailure::Permanent {
                kind: ErrorKind::Rejected,
                message: mismatch.to_string(),
                source: Some(Box::new(mismatch)),
            });
        }
        // The row holds the size the upload declared (and signed): a body of another size is not
        // the upload this image was made for.
        if bytes.len() as u64 != row.byte_size {
            return Err(JobFailure::permanent(
                ErrorKind::Rejected,
                format!(
                    "the uploaded file is {} bytes, not the declared {}",
                    bytes.len(),
                    row.byte_size
                ),
            ));
        }

        let specs = self.specs.clone();
        let limits = self.limits;
        let bytes_in = bytes.len() as u64;
        let render_started = std::time::Instant::now();
        let rendered = off_the_runtime(move || engine::render(&bytes, &specs, &limits))
            .await
            .map_err(|e| JobFailure::Retryable {
                reason: format!("rendering was interrupted: {e}"),
                source: Some(Box::new(e)),
            })?
            .map_err(|e| JobFailure::Permanent {
                kind: ErrorKind::Permanent,
                message: e.to_string(),
                source: Some(Box::new(e)),
            })?;
        metrics::render(stage, render_started.elapsed());

        let mut derivatives = BTreeMap::new();
        let mut bytes_out = 0;
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
            bytes_out += bytes;
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
        let ended = rows
            .modify_from(row, |r| match r.stage_status(stage) {
                Status::Processing => r
                    .complete(stage, result.clone(), Timestamp::now())
                    .map(|()| true),
                // Completed by a concurrent duplicate, or failed by a last-receive elsewhere.
                _ => Ok(false),
            })
            .await?
            .map_or(Status::Failed, |r| r.stage_status(stage));
        metrics::bytes(stage, bytes_in, bytes_out);
        tracing::info!("stage completed");
        Ok(ended)
    }
}

/// Runs CPU-bound work on the blocking pool. Under the simulator (feature `testing`, its clock
/// installed on this thread) it runs inline instead: two processes' renders on two threads would
/// finish in a wall-clock order, and one seed would no longer replay one schedule.
async fn off_the_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    #[cfg(feature = "testing")]
    if crate::determinism::installed() {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work).await
}

#[cfg(all(test, feature = "testing"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::{ContentType, ImageId, OwnerId};
    use crate::engine::{default_thumbnail_specs, samples::png_rgba16_one_colour};
    use crate::faults::{Faulty, Switch};
    use crate::ports::LeaseView;
    use crate::processing::Policy;
    use crate::testing::{MemoryControl, MemoryImages, MemoryStore};

    /// The thumbnail stage over fakes; the test keeps a handle to the control table.
    struct Fixture {
        work: StageWork<MemoryStore>,
        images: MemoryImages,
        control: Faulty<MemoryControl, Switch>,
        gate: Gate<Faulty<MemoryControl, Switch>>,
    }

    fn fixture() -> Fixture {
        let control = Faulty::default();
        Fixture {
            work: StageWork::new(
                Stage::Thumbnail,
                default_thumbnail_specs(),
                Limits::default(),
                MemoryStore::default(),
            ),
            images: MemoryImages::default(),
            gate: Gate::new(
                Stage::Thumbnail,
                Faulty::clone(&control),
                &Policy::default(),
            ),
            control,
        }
    }

    impl Fixture {
        /// A PNG original of `owner` in the bucket, without a row yet, and a retry's job for it.
        fn original(&self, owner: &str) -> Job {
            let owner: OwnerId = owner.parse().unwrap();
            let image_id = ImageId::new();
            let key = ObjectKey::original(&owner, image_id);
            let png = png_rgba16_one_colour(24, 16, [0xffff, 0x8000, 0, 0xffff]);
            self.work.store.insert(key.as_str(), png, "image/png");
            Job {
                key,
                owner,
                image_id,
                size: None,
                origin: Origin::Requested,
            }
        }

        async fn run(&self, job: &Job, message_id: &str, receive: u32) -> Result<Ran, JobFailure> {
            let holder = Holder {
                message_id,
                receive,
            };
            let rows = RowWriter::new(&self.images, 4);
            self.work.run(job, &holder, rows, &self.gate).await
        }

        fn row(&self, job: &Job) -> ImageRecord {
            let rows = self.images.rows();
            rows.into_iter()
                .find(|r| r.image_id == job.image_id)
                .unwrap()
        }

        fn lease(&self, job: &Job) -> Option<LeaseView> {
            self.control
                .inner()
                .lease_of(Stage::Thumbnail, job.image_id)
        }
    }

    #[tokio::test]
    async fn an_original_without_a_row_is_adopted_rendered_and_completed_keeping_its_lease() {
        let f = fixture();
        let job = f.original("alice");
        assert_eq!(f.run(&job, "m1", 1).await.unwrap(), Ran::Yes);
        let row = f.row(&job);
        assert_eq!(row.thumbnail_status, Status::Completed);
        assert_eq!(row.content_type, ContentType::Png);
        assert_eq!(row.thumbnails.len(), 3);
        assert_eq!(
            f.work.store.keys().len(),
            4,
            "the original and three thumbnails"
        );
        assert!(f.lease(&job).is_some_and(|l| l.holder == "m1"));
        assert_eq!(
            f.run(&job, "m2", 1).await.unwrap(),
            Ran::Skipped,
            "a completed stage is not redone"
        );
    }

    #[tokio::test]
    async fn a_key_of_another_owner_is_rejected_before_any_lease() {
        let f = fixture();
        let job = f.original("alice");
        f.run(&job, "m1", 1).await.unwrap();
        let foreign = Job {
            key: ObjectKey::original(&"mallory".parse().unwrap(), job.image_id),
            owner: "mallory".parse().unwrap(),
            ..job.clone()
        };
        let refused = f.run(&foreign, "m2", 1).await;
        assert!(
            matches!(
                refused,
                Err(JobFailure::Permanent {
                    kind: ErrorKind::Rejected,
                    ..
                })
            ),
            "{refused:?}"
        );
        assert!(f.lease(&job).is_some_and(|l| l.holder == "m1"));
    }

    #[tokio::test]
    async fn a_live_lease_of_this_message_is_busy_and_of_another_a_duplicate_to_drop() {
        let f = fixture();
        let job = f.original("alice");
        let until = Timestamp::now().plus_secs(60);
        f.control
            .inner()
            .hold_lease(Stage::Thumbnail, job.image_id, "m1", until);
        assert_eq!(f.run(&job, "m1", 2).await.unwrap(), Ran::Busy { until });
        assert_eq!(f.run(&job, "m2", 1).await.unwrap(), Ran::Skipped);
        assert_eq!(f.row(&job).thumbnail_status, Status::Pending);
    }

    #[tokio::test]
    async fn a_second_abandonment_in_a_row_fails_the_stage_as_crashed_and_releases_the_lease() {
        let f = fixture();
        let job = f.original("alice");
        f.control.inner().set_lease(
            Stage::Thumbnail,
            job.image_id,
            LeaseView {
                holder: "m1".into(),
                receive: 2,
                until: Timestamp::now().plus_secs(-120),
                attempts: 2,
                ran_out_of_time: false,
            },
        );
        assert_eq!(f.run(&job, "m1", 3).await.unwrap(), Ran::Yes);
        let row = f.row(&job);
        assert_eq!(row.thumbnail_status, Status::Failed);
        assert_eq!(row.processing_error.as_deref(), Some(CRASHED));
        assert!(f.lease(&job).is_none());
    }
}
