//! What a run does with one dead letter or one failed row: the conditional reset whose winner
//! enqueues, or the letter sent back as it is.

use std::time::Duration;

use super::pacer::Pacer;
use super::{RetryAllError, RetryPorts, RESET_ATTEMPTS};
use crate::domain::{ImageRecord, Job, Stage, Status, Timestamp};
use crate::events::parse_jobs;
use crate::ops::retry::{requeue_failed, RetryError};
use crate::ports::{
    DeadLetter, ImageRepository, JobQueue, QueueAdmin, Receipt, Requeue, StatusIndex,
};

/// What became of one dead letter.
pub(super) enum Fate {
    Requeued,
    Redriven,
    Duplicate,
    Skip(&'static str),
}

/// One run's decisions, over its ports.
pub(super) struct Run<'p, 'a, R, Q, A> {
    pub(super) ports: &'p RetryPorts<'a, R, Q, A>,
    pub(super) started_at: Timestamp,
}

impl<R, Q, A> Run<'_, '_, R, Q, A>
where
    R: ImageRepository + StatusIndex,
    Q: JobQueue,
    A: QueueAdmin,
{
    pub(super) async fn dead_letter(
        &self,
        stage: Stage,
        letter: &DeadLetter,
        pacer: &mut Pacer,
    ) -> Result<Fate, RetryAllError> {
        let jobs = match parse_jobs(&letter.body) {
            Ok(jobs) => jobs,
            Err(_) => return Ok(Fate::Skip("unreadable body")),
        };
        let mut fate = Fate::Duplicate;
        for job in &jobs {
            match self.job_fate(stage, job, letter, pacer).await? {
                Fate::Skip(why) => return Ok(Fate::Skip(why)),
                Fate::Requeued => fate = Fate::Requeued,
                Fate::Redriven if !matches!(fate, Fate::Requeued) => fate = Fate::Redriven,
                _ => {}
            }
        }
        self.ports
            .admin
            .delete_dead_letter(Receipt {
                stage,
                handle: &letter.receipt_handle,
            })
            .await?;
        Ok(fate)
    }

    async fn job_fate(
        &self,
        stage: Stage,
        job: &Job,
        letter: &DeadLetter,
        pacer: &mut Pacer,
    ) -> Result<Fate, RetryAllError> {
        for _ in 0..RESET_ATTEMPTS {
            let row = self.ports.images.get(job.image_id).await?;
            if let Some(row) = &row {
                if row.owner_id != job.owner {
                    return Ok(Fate::Skip("the key's owner is not the row's owner"));
                }
            }
            // No row (the processor adopts the original), or the event of a later write to the
            // original whatever the stage's state (a failed image reset by an earlier letter of
            // this run is pending now): the processor deletes that version (the pinned one must
            // stay current). Either way the letter goes back to work as it is.
            let Some(row) = row.filter(|r| !r.is_later_write(job)) else {
                pacer.wait().await;
                self.ports
                    .queue
                    .requeue(&Requeue {
                        stage,
                        body: &letter.body,
                        delay: Duration::ZERO,
                        deferred_since: None,
                    })
                    .await?;
                return Ok(Fate::Redriven);
            };
            let changed_in_run = row.updated_at >= self.started_at;
            match row.stage_status(stage) {
                Status::Completed => return Ok(Fate::Duplicate),
                Status::Pending if changed_in_run => return Ok(Fate::Duplicate),
                Status::Failed if !changed_in_run => {
                    if self.reset_and_enqueue(row, pacer).await?.is_some() {
                        return Ok(Fate::Requeued);
                    }
                    // Lost the race: someone else changed the row; decide again on what it is now.
                }
                Status::Failed => return Ok(Fate::Skip("failed again during this run")),
                Status::Pending | Status::Processing => {
                    return Ok(Fate::Skip("not marked failed yet"))
                }
            }
        }
        Ok(Fate::Skip("the row kept changing"))
    }

    /// The conditional reset ([`requeue_failed`]); the winner enqueues the reset stages. `None`
    /// when another writer changed the row first (it is not failed any more, or someone else
    /// re-queued it).
    pub(super) async fn reset_and_enqueue(
        &self,
        before: ImageRecord,
        pacer: &mut Pacer,
    ) -> Result<Option<Vec<Stage>>, RetryAllError> {
        pacer.wait().await;
        match requeue_failed(
            self.ports.images,
            self.ports.queue,
            before,
            Timestamp::now(),
        )
        .await
        {
            Ok(retried) => Ok(retried.map(|r| r.stages)),
            Err(RetryError::NotFailed(_)) => Ok(None),
            Err(RetryError::Repo(e)) => Err(e.into()),
            Err(RetryError::Queue(e)) => Err(e.into()),
            // Not returned by a single reset.
            Err(RetryError::NotFound | RetryError::Busy) => Ok(None),
        }
    }
}
