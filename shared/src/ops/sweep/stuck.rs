//! Step 3: the rows that never end. Re-enqueued, or failed after too many re-enqueues.

use tokio::time::Instant;

use super::{secs, SweepError, SweepPolicy, SweepReport, Sweeper, ROW_PAGE};
use crate::domain::UploadState;
use crate::domain::{ErrorKind, ImageId, ImageRecord, RetryMessage, Stage, Status, Timestamp};
use crate::ports::{ImageRepository, JobQueue, StatusIndex, StatusPage};

/// The failure reason of a row that stayed stuck through the sweeper's re-enqueues.
fn never_finished_reason(policy: &SweepPolicy, row: &ImageRecord) -> String {
    let hours = policy.stuck_after.as_secs_f64() / 3600.0;
    format!(
        "processing never finished: no progress for {hours:.1} h after each of {} re-enqueues \
         (its processing message was lost or keeps being dropped); retry it",
        row.sweep_requeues
    )
}

impl<R: ImageRepository + StatusIndex, A, S, Q: JobQueue> Sweeper<'_, R, A, S, Q> {
    /// `pending` (stored) and `processing` rows not written for [`SweepPolicy::stuck_after`],
    /// oldest first: re-enqueued, or failed after too many re-enqueues. Whether it got through
    /// them within the budget.
    pub(super) async fn requeue_stuck(
        &self,
        now: Timestamp,
        until: Instant,
        report: &mut SweepReport,
    ) -> Result<bool, SweepError> {
        let stuck_before = now.plus_secs(-secs(self.policy.stuck_after));
        for status in [Status::Pending, Status::Processing] {
            let mut cursor: Option<String> = None;
            'pages: loop {
                let page = self
                    .ports
                    .images
                    .page_by_status(
                        StatusPage::oldest_first(status, ROW_PAGE).after(cursor.as_deref()),
                    )
                    .await?;
                for row in &page.items {
                    // Oldest in its status first: past the horizon, no later row is stuck.
                    if row.status_since() >= stuck_before {
                        break 'pages;
                    }
                    if row.updated_at >= stuck_before {
                        // In this status for long, but it moved recently.
                        continue;
                    }
                    if row.upload_state == UploadState::AwaitingUpload {
                        // Nothing uploaded: the expiry's business.
                        continue;
                    }
                    if Instant::now() >= until {
                        return Ok(false);
                    }
                    self.unstick(row.image_id, now, stuck_before, report)
                        .await?;
                }
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        Ok(true)
    }

    pub(super) async fn unstick(
        &self,
        id: ImageId,
        now: Timestamp,
        stuck_before: Timestamp,
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        let policy = &self.policy;
        let written = self
            .rows()
            .modify(id, |r| {
                if r.processing_status.is_terminal()
                    || r.updated_at >= stuck_before
                    || r.upload_state == UploadState::AwaitingUpload
                {
                    // It moved on (or was retried) since the page was read.
                    return Ok(false);
                }
                if r.sweep_requeues >= policy.max_sweep_requeues {
                    let reason = never_finished_reason(policy, r);
                    for stage in Stage::ALL {
                        if !r.stage_status(stage).is_terminal() {
                            r.fail(stage, ErrorKind::Transient, &reason, now)?;
                        }
                    }
                } else {
                    r.note_sweep_requeue(now);
                }
                Ok(true)
            })
            .await?;
        let Some(row) = written.filter(|r| r.updated_at == now) else {
            return Ok(());
        };
        if row.processing_status == Status::Failed {
            tracing::warn!(image_id = %id, requeues = row.sweep_requeues, "stuck image failed: processing never finished");
            report.stuck_failed += 1;
            return Ok(());
        }
        // Counted first, sent second: a send that fails costs one of the row's re-enqueues, so
        // a row is never re-enqueued without bound.
        let unfinished: Vec<Stage> = Stage::ALL
            .into_iter()
            .filter(|s| !row.stage_status(*s).is_terminal())
            .collect();
        for stage in &unfinished {
            let message = RetryMessage::new(row.image_id, row.original_key.clone(), *stage);
            self.ports.queue.enqueue(&message).await?;
        }
        tracing::warn!(image_id = %id, stages = ?unfinished, requeues = row.sweep_requeues, "stuck image re-enqueued: no progress for too long");
        report.stuck_requeued += 1;
        Ok(())
    }
}
