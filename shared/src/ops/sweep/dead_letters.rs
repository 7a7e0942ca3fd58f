//! Step 1: the dead letters. Both DLQs drained with long polls, each letter's stage failed
//! when its row went stale, letters whose work was done deleted, the rest released.

use std::collections::HashSet;

use tokio::time::Instant;

use super::{
    secs, SweepError, SweepReport, Sweeper, MAX_LONG_POLL, MIN_LONG_POLL, REPEATS_TOLERATED,
};
use crate::domain::{ErrorKind, ImageRecord, Stage, Status, Timestamp};
use crate::events::parse_jobs;
use crate::ports::{DeadLetterReceive, ImageRepository, QueueAdmin, Receipt};
use crate::retry::MAX_RECEIVES;

/// Whether a dead letter's job is done: its stage completed, and the letter is not the event of
/// a later write to the original (that one's version is for a processor to remove, on redrive).
fn letter_is_done(job: &crate::domain::Job, stage: Stage, row: &ImageRecord) -> bool {
    row.stage_status(stage) == Status::Completed && !row.is_later_write(job)
}

/// The failure reason of a stage whose message reached the DLQ.
fn dead_letter_reason(stage: Stage, row: &ImageRecord) -> String {
    let last = match (&row.processing_error, row.error_kind) {
        (Some(e), Some(ErrorKind::Transient)) => format!("; last error: {e}"),
        _ => String::new(),
    };
    format!(
        "gave up after {MAX_RECEIVES} attempts without finishing (the process crashed, timed out \
         or could not record the outcome{last}); the message is kept in the {stage} dead-letter \
         queue"
    )
}

impl<R: ImageRepository, A: QueueAdmin, S, Q> Sweeper<'_, R, A, S, Q> {
    /// Both DLQs, every letter received once and kept hidden (in `held`); whether both ended
    /// with an empty long poll within the budget.
    pub(super) async fn drain_dead_letters(
        &self,
        now: Timestamp,
        until: Instant,
        held: &mut Vec<(Stage, String)>,
        report: &mut SweepReport,
    ) -> Result<bool, SweepError> {
        let mut finished = true;
        for stage in Stage::ALL {
            // An unfinished DLQ (out of time: the next one stops at once too; letters another
            // reader holds) does not keep the next one from being drained.
            finished &= self
                .drain_dead_letter_queue(stage, now, until, held, report)
                .await?;
        }
        Ok(finished)
    }

    pub(super) async fn drain_dead_letter_queue(
        &self,
        stage: Stage,
        now: Timestamp,
        until: Instant,
        held: &mut Vec<(Stage, String)>,
        report: &mut SweepReport,
    ) -> Result<bool, SweepError> {
        let stale_before = now.plus_secs(-secs(self.policy.stale_after));
        let mut seen = HashSet::new();
        let mut nothing_new = 0;
        loop {
            if nothing_new >= REPEATS_TOLERATED {
                // Letters come back while held (their hold ran out, or another reader released
                // them): this sweep cannot tell what it has not seen; the next one goes on.
                return Ok(false);
            }
            let left = until.saturating_duration_since(Instant::now());
            let wait = self
                .policy
                .dead_letter_wait
                .clamp(MIN_LONG_POLL, MAX_LONG_POLL)
                .min(left);
            if wait < MIN_LONG_POLL {
                // No time left for a long poll: an empty short poll would prove nothing.
                return Ok(false);
            }
            let letters = self
                .ports
                .dead_letters
                .receive_dead_letters(&DeadLetterReceive {
                    stage,
                    max: 10,
                    hide_for: left + self.policy.hold_margin,
                    wait,
                })
                .await?;
            if letters.is_empty() {
                // Letters another reader holds (a retry-all run) are not seen: not finished. The
                // depth only decides `finished`: a depth that cannot be read does not stop the
                // sweep (its later steps matter more), it only leaves the sweep unfinished.
                let mine = held.iter().filter(|(s, _)| *s == stage).count() as u64;
                return Ok(match self.ports.dead_letters.depth(stage, true).await {
                    Ok(depth) => depth.in_flight <= mine,
                    Err(e) => {
                        tracing::warn!(%stage, error = %e, "could not read the DLQ's depth; the sweep goes on, unfinished");
                        false
                    }
                });
            }
            if letters.iter().all(|l| seen.contains(&l.message_id)) {
                nothing_new += 1;
            }
            for letter in letters {
                if !seen.insert(letter.message_id.clone()) {
                    held.push((stage, letter.receipt_handle.clone()));
                    continue;
                }
                report.dead_letters_seen += 1;
                // Unreadable bodies stay for a human; nothing to mark.
                let jobs = parse_jobs(&letter.body).unwrap_or_default();
                let mut work_done = !jobs.is_empty();
                for job in jobs {
                    let failed = self
                        .rows()
                        .modify(job.image_id, |r| {
                            if r.stage_status(stage).is_terminal() || r.updated_at >= stale_before {
                                return Ok(false);
                            }
                            let reason = dead_letter_reason(stage, r);
                            r.fail(stage, ErrorKind::Transient, &reason, now)
                                .map(|()| true)
                        })
                        .await?;
                    if failed.as_ref().is_some_and(|r| {
                        r.stage_status(stage) == Status::Failed && r.updated_at == now
                    }) {
                        tracing::warn!(image_id = %job.image_id, %stage, "dead-lettered image marked failed");
                        report.stages_failed += 1;
                    }
                    work_done &= failed.is_some_and(|r| letter_is_done(&job, stage, &r));
                }
                if work_done {
                    // The letter's work was done after all (a retry completed it, or the
                    // process died after completing it, before its message was deleted): nothing
                    // for operators to redrive, and the DLQ keeps only what failed.
                    self.ports
                        .dead_letters
                        .delete_dead_letter(Receipt {
                            stage,
                            handle: &letter.receipt_handle,
                        })
                        .await?;
                    report.done_letters_deleted += 1;
                } else {
                    held.push((stage, letter.receipt_handle.clone()));
                }
            }
        }
    }

    /// Makes every held letter visible again at once (they stay in their DLQ). A letter whose
    /// release fails comes back by itself when its hold ends.
    pub(super) async fn release(&self, held: &[(Stage, String)]) {
        for (stage, receipt_handle) in held {
            if let Err(e) = self
                .ports
                .dead_letters
                .release_dead_letter(Receipt {
                    stage: *stage,
                    handle: receipt_handle,
                })
                .await
            {
                tracing::warn!(%stage, error = %e, "could not release a dead letter; it comes back when its hold ends");
            }
        }
    }
}
