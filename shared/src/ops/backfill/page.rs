//! One page of originals: each decided, written and enqueued side by side.

use futures::stream::{self, StreamExt};

use super::decide::{decide, Decision, Left};
use super::estimate::megapixels;
use super::f64_bits;
use super::{BackfillCounts, BackfillError, BackfillPorts, BackfillSettings, ATTEMPTS, HEAD_BYTES};
use crate::domain::{ObjectKey, RetryMessage, Stage, Timestamp};
use crate::ports::{
    BackfillRows, ImageRepository, JobQueue, ListedOriginal, OriginalsSource, RepoError,
};

/// The counts of some originals and their stage messages (thumbnail, variant).
pub(super) type Tally = (BackfillCounts, (u64, u64));

/// One page's pass over its ports: writes and enqueues unless `started_at` is `None` (dry run).
pub(super) struct PagePass<'p, 'a, S, R, Q, M> {
    /// The ports of the run.
    pub(super) ports: &'p BackfillPorts<'a, S, R, Q, M>,
    /// The call's settings.
    pub(super) settings: &'p BackfillSettings,
    /// The run's start (rows changed since are left alone), or `None` for a dry run.
    pub(super) started_at: Option<Timestamp>,
    /// When the page is decided.
    pub(super) now: Timestamp,
}

/// The row write a decision asks for.
#[derive(Debug, Clone, Copy)]
enum Write {
    Create,
    Repair,
    Requeue,
}

impl<S, R, Q, M> PagePass<'_, '_, S, R, Q, M>
where
    S: OriginalsSource,
    R: ImageRepository + BackfillRows,
    Q: JobQueue,
{
    /// The originals of one page, decided side by side. Returns the page's counts and stage
    /// messages by stage.
    pub(super) async fn run(&self, items: &[ListedOriginal]) -> Result<Tally, BackfillError> {
        let results: Vec<Result<Tally, BackfillError>> = stream::iter(items)
            .map(|item| self.one(item))
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        let mut counts = BackfillCounts::default();
        let mut stages = (0, 0);
        for r in results {
            let (c, s) = r?;
            counts.add(&c);
            stages = (stages.0 + s.0, stages.1 + s.1);
        }
        Ok((counts, stages))
    }

    /// One original: decided, written (unless dry) and its stages enqueued.
    async fn one(&self, item: &ListedOriginal) -> Result<Tally, BackfillError> {
        let (ports, settings, started_at, now) =
            (self.ports, self.settings, self.started_at, self.now);
        let mut c = BackfillCounts {
            images_found: 1,
            ..BackfillCounts::default()
        };
        let Ok((owner, image_id)) = ObjectKey::parse_original(&item.key) else {
            c.not_images = 1;
            return Ok((c, (0, 0)));
        };
        let key = ObjectKey::original(&owner, image_id);
        let Some(head) = ports.store.head_bytes(&key, HEAD_BYTES).await? else {
            // Deleted since the listing.
            c.images_found = 0;
            return Ok((c, (0, 0)));
        };
        let dry = started_at.is_none();
        let started_at = started_at.unwrap_or(now);
        for _ in 0..ATTEMPTS {
            let row = ports.rows.read_row(image_id).await?;
            let decision = decide(
                &owner,
                image_id,
                item.size,
                &head,
                row,
                started_at,
                Timestamp::now(),
            );
            let (mut record, stages, write) = match decision {
                Decision::Leave(why) => {
                    match why {
                        Left::Completed => c.completed = 1,
                        Left::InProgress => c.in_progress = 1,
                        Left::Failed => c.failed = 1,
                        Left::ChangedDuringRun => c.changed_during_run = 1,
                        Left::NotAnImage => c.not_images = 1,
                        Left::ForeignOwner => c.foreign_owner = 1,
                    }
                    return Ok((c, (0, 0)));
                }
                Decision::Create(record, stages) => (record, stages, Write::Create),
                Decision::Repair(record, stages) => (record, stages, Write::Repair),
                Decision::Requeue(record, stages) => (record, stages, Write::Requeue),
            };
            if !dry {
                let written = match write {
                    Write::Create => ports.rows.create(&record).await,
                    Write::Repair => ports.rows.replace_legacy(&record).await,
                    Write::Requeue => ports.rows.update(&mut record).await,
                };
                match written {
                    Ok(()) => {}
                    Err(RepoError::Conflict) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            match write {
                Write::Create => c.rows_created = 1,
                Write::Repair => c.rows_repaired = 1,
                Write::Requeue => c.rows_requeued = 1,
            }
            let mut by_stage = (0, 0);
            for stage in &stages {
                if !dry {
                    ports
                        .queue
                        .enqueue(&RetryMessage::new(
                            image_id,
                            record.original_key.clone(),
                            *stage,
                        ))
                        .await?;
                }
                match stage {
                    Stage::Thumbnail => {
                        by_stage.0 += 1;
                        c.derivatives_missing += settings.outputs.0;
                    }
                    Stage::Variant => {
                        by_stage.1 += 1;
                        c.derivatives_missing += settings.outputs.1;
                    }
                }
            }
            c.stages_enqueued = stages.len() as u64;
            if !stages.is_empty() {
                c.megapixels = f64_bits::F64::from_f64(megapixels(&head, item.size));
            }
            return Ok((c, by_stage));
        }
        c.changed_during_run = 1;
        Ok((c, (0, 0)))
    }
}
