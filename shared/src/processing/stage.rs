//! One job of a stage: check the row and the lease, fetch the original, check its bytes against
//! the row (declared type and size), render every spec from one decode, store the derivatives
//! under deterministic keys, complete the stage.

use std::collections::BTreeMap;

use crate::domain::{
    Derivative, ErrorKind, Job, ObjectKey, Stage, StageResult, Status, Timestamp, UploadState,
};
use crate::engine;
use crate::metrics;
use crate::ports::{ControlStore, ImageRepository, JobQueue, Lease, ObjectStore};

use super::{JobFailure, Message, Processor};

/// Whether a job that ended well touched its dependencies (what a half-open probe needs to know).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ran {
    /// The stage ran: the original was read and the outcome written.
    Yes,
    /// Nothing to do (already ended, a duplicate, someone else's lease).
    Skipped,
}

/// The reason a stage fails with when its previous attempt died mid-way.
pub const CRASHED: &str = "processing crashed: the process died (or ran out of time) while \
                           working on this image; retry it, or check the file";

impl<S: ObjectStore, R: ImageRepository, Q: JobQueue, C: ControlStore> Processor<S, R, Q, C> {
    /// Runs the stage for `job` unless it has ended, is leased elsewhere, or crashed before.
    pub(super) async fn process(&self, job: &Job, m: &Message) -> Result<Ran, JobFailure> {
        let stage = self.stage;
        let mut original = None;
        let row = self.row_or_adopt(job, &mut original).await?;
        if row.owner_id != job.owner {
            return Err(JobFailure::permanent(
                ErrorKind::Rejected,
                "the original's key does not belong to the image's owner",
            ));
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

        match self.take_lease(job.image_id, &m.message_id).await? {
            Lease::HeldElsewhere => {
                tracing::info!(
                    "another worker holds this image's lease; duplicate delivery dropped"
                );
                return Ok(Ran::Skipped);
            }
            Lease::Abandoned => {
                // This very message's previous attempt never ended: running it again would
                // most likely take the process (and the batch with it) down again.
                tracing::error!("the previous attempt at this message died; failing the stage");
                let failed = self.finish_failed(job, ErrorKind::Permanent, CRASHED).await;
                self.release_lease(job.image_id, &m.message_id).await;
                return failed.map(|()| Ran::Yes);
            }
            Lease::Taken => {}
        }
        let result = self.run_stage(job, original).await;
        self.release_lease(job.image_id, &m.message_id).await;
        result.map(|()| Ran::Yes)
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
            return Err(JobFailure::retryable("the image row disappeared"));
        };
        if row.stage_status(stage) != Status::Processing {
            return Ok(());
        }

        let bytes = match original {
            Some(b) => b,
            None => self.store.get(&job.key).await?,
        };
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
        let rendered = tokio::task::spawn_blocking(move || engine::render(&bytes, &specs, &limits))
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
        self.modify(job, |r| match r.stage_status(stage) {
            Status::Processing => r
                .complete(stage, result.clone(), Timestamp::now())
                .map(|()| true),
            // Completed by a concurrent duplicate, or failed by a last-receive elsewhere.
            _ => Ok(false),
        })
        .await?;
        metrics::bytes(stage, bytes_in, bytes_out);
        tracing::info!("stage completed");
        Ok(())
    }
}
