//! The invariants of docs/ARCHITECTURE.md, judged against what the world did (the ledger):
//!
//! 1. every accepted upload whose object exists ends `completed` or `failed` with a reason, and
//!    an upload that never came ends `failed` / `expired`;
//! 2. a stored object is never reported as not arrived;
//! 3. no image fails for a fault it did not cause: "crashed" / "ran out of time" needs two
//!    abandoned attempts of that stage, a transient give-up needs faults met by that stage (and,
//!    for an outage, its deferrals past the cap or a deferral that could not be sent), a good
//!    file never fails as bad, and a corrupt one never completes;
//! 4. no derivative and no notice twice (checked as the schedule runs, in `faults`);
//! 5. the shown original is the processed version: a completed image's pinned version is the
//!    upload's own, and it survives the bucket's lifecycle rules as the template writes them; it
//!    stays the current version (a later write's version is deleted) unless every event of that
//!    write was lost or its letter is still in a DLQ (judged where events name their version);
//! 6. the DLQs hold only what has a failed row;
//! 7. a sweep leaves no stale dead letter's row behind (checked after each sweep);
//! 8. no message is deferred by the circuit breaker once its deferrals began longer ago than the
//!    cap ([`safelight::processing::Policy::max_deferral`]): a persistent error or a long outage
//!    fails images on to the DLQs instead of keeping them waiting (checked at each deferral, in
//!    `faults`).

use std::collections::BTreeMap;

use safelight::ops::sweep::SweepPolicy;
use safelight::{ImageId, ImageRecord, Stage, Status, UploadState};

use crate::world::{stage_ix, Upload, World};

/// The prefixes whose non-current versions the template's lifecycle rules expire (`""` for a
/// rule without a prefix: the whole bucket), read from the template itself.
pub fn noncurrent_expiry_prefixes(template: &str) -> Vec<String> {
    let Some(start) = template.find("LifecycleConfiguration:") else {
        return Vec::new();
    };
    let line_start = template[..start].rfind('\n').map_or(0, |i| i + 1);
    let indent = start - line_start;
    let block: Vec<&str> = template[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
        .collect();
    let mut rules: Vec<Vec<&str>> = Vec::new();
    for line in block {
        if line.trim_start().starts_with("- ") {
            rules.push(Vec::new());
        }
        if let Some(rule) = rules.last_mut() {
            rule.push(line);
        }
    }
    rules
        .iter()
        .filter(|r| r.iter().any(|l| l.contains("NoncurrentVersionExpiration")))
        .map(|r| {
            r.iter()
                .find_map(|l| {
                    let (_, after) = l.split_once("Prefix:")?;
                    let value = after.split(['}', ',']).next().unwrap_or_default();
                    Some(value.trim().trim_matches('"').trim_matches('\'').to_owned())
                })
                .unwrap_or_default()
        })
        .collect()
}

const TEMPLATE: &str = include_str!("../../infra/template.yaml");

fn failure_reason(row: &ImageRecord) -> String {
    row.processing_error.clone().unwrap_or_default()
}

/// Every invariant, at quiescence.
pub fn at_quiescence(world: &World) {
    let rows: BTreeMap<ImageId, ImageRecord> = world
        .images
        .rows()
        .into_iter()
        .map(|r| (r.image_id, r))
        .collect();
    let ledgers = world.state().ledger.clone();
    let expiring = noncurrent_expiry_prefixes(TEMPLATE);
    let letters = dead_letters(world);
    for (id, row) in &rows {
        let ledger = ledgers.get(id).cloned().unwrap_or_default();
        let key = row.original_key.as_str();
        let versions = world.store.versions(key);
        let stored = !versions.is_empty();
        let reason = failure_reason(row);
        // 1
        match row.processing_status {
            Status::Completed => {}
            Status::Failed if !reason.is_empty() => {}
            Status::Failed => world.violation(format!("{id}: failed without a reason")),
            other if stored => world.violation(format!(
                "{id}: its original is stored but the image never ended ({other}, thumbnail {}, variant {}, upload {:?})",
                row.thumbnail_status, row.variant_status, row.upload_state
            )),
            other => world.violation(format!(
                "{id}: its upload never came but the row is still {other} ({:?})",
                row.upload_state
            )),
        }
        // 2
        if row.upload_state == UploadState::Expired && stored {
            world.violation(format!(
                "{id}: reported as never arrived, but its original was stored at {} ms",
                ledger.stored_at.unwrap_or(-1)
            ));
        }
        // 3
        let good = matches!(
            ledger.upload,
            Some(Upload::Normal | Upload::Late | Upload::Twice)
        );
        if good && row.processing_status == Status::Failed {
            let failed: Vec<usize> = Stage::ALL
                .iter()
                .filter(|s| row.stage_status(**s) == Status::Failed)
                .map(|s| stage_ix(*s))
                .collect();
            let abandoned = failed
                .iter()
                .map(|s| ledger.abandoned[*s])
                .max()
                .unwrap_or(0);
            let trouble: u32 = failed
                .iter()
                .map(|s| ledger.faulted[*s] + ledger.killed[*s])
                .sum();
            let crash_like = reason.starts_with("processing crashed")
                || reason.starts_with("processing ran out of time");
            let gave_up = reason.starts_with("gave up after") || reason.contains("never finished");
            let verdict = if crash_like {
                (abandoned >= 2)
                    .then_some(())
                    .ok_or("needs two abandoned attempts")
            } else if reason.contains("did not arrive") {
                Ok(()) // judged by invariant 2
            } else if row.error_kind == Some(safelight::ErrorKind::Transient) && gave_up {
                // An outage (a dependency unavailable) is waited out like a deferral, up to
                // the cap: it fails an image only past the cap, or when the deferral itself
                // could not be sent.
                // (The processor's own give-up: the sweeper's "... without finishing" is a
                // letter that left on a crash or timeout of its last receive.)
                let outage = reason.starts_with("gave up after 3 attempts: ")
                    && (reason.contains("object storage failed")
                        || reason.contains("image table failed"));
                if outage && !ledger.capped && !ledger.queue_faulted {
                    Err("an outage failed it before the deferral cap (it should have been deferred)")
                } else {
                    (trouble > 0 || ledger.refused)
                        .then_some(())
                        .ok_or("gave up on a stage that met no fault, kill or lost event")
                }
            } else if row.error_kind == Some(safelight::ErrorKind::Transient) {
                Err("the reason shown is a passing note, not why it failed")
            } else {
                Err("a good file failed as a bad one")
            };
            if let Err(why) = verdict {
                world.violation(format!(
                    "{id}: a good image failed with \"{reason}\" ({why}; abandoned {:?}, killed {:?}, faults {:?})",
                    ledger.abandoned, ledger.killed, ledger.faulted
                ));
            }
        }
        if ledger.upload == Some(Upload::Corrupt) && row.processing_status == Status::Completed {
            world.violation(format!("{id}: a corrupt original completed"));
        }
        // 5
        if row.processing_status == Status::Completed {
            if row.original_version.is_none() {
                world.violation(format!("{id}: completed with no pinned version"));
            }
            if let Some(pinned) = &row.original_version {
                let current = versions.last() == Some(pinned);
                let expired = !current && expiring.iter().any(|p| key.starts_with(p.as_str()));
                if !versions.contains(pinned) || expired {
                    world.violation(format!(
                        "{id}: its pinned original {pinned} is gone or non-current under a lifecycle expiry (versions {versions:?}, expiring prefixes {expiring:?})"
                    ));
                }
                // A later write to the key is not the image: a processor that sees its event
                // deletes that version. It may stay current only while the product cannot know
                // of it: every stage's event of that write was lost, or its letter is still in a
                // DLQ for operators. Judged only for events that name their version (AWS's):
                // without one (the local emulator's) a dead-lettered later write's letter cannot
                // be told from a duplicate of the image's own event, and the sweeper deletes it
                // as done (seed 25 with this check on all schedules).
                let later = versions
                    .last()
                    .filter(|v| *v != pinned && world.scenario.event_versions);
                if let Some(later) = later {
                    let unseen = ledger.lost_events.get(later).copied().unwrap_or(0)
                        >= Stage::ALL.len() as u32;
                    let kept = letters.iter().any(|(_, body)| {
                        safelight::events::parse_jobs(body)
                            .unwrap_or_default()
                            .iter()
                            .any(|j| {
                                j.image_id == *id
                                    && matches!(&j.origin, safelight::Origin::Stored { version: Some(v) } if v == later)
                            })
                    });
                    if !unseen && !kept {
                        world.violation(format!(
                            "{id}: a later write {later} stays the current version over the pinned original {pinned}, and no letter of it is left to redrive (versions {versions:?})"
                        ));
                    }
                }
            }
            for stage in Stage::ALL {
                let derivatives = match stage {
                    Stage::Thumbnail => &row.thumbnails,
                    Stage::Variant => &row.variants,
                };
                if derivatives.is_empty() {
                    world.violation(format!("{id}: {stage} completed without derivatives"));
                }
                for d in derivatives.values() {
                    if world.store.versions(d.key.as_str()).is_empty() {
                        world.violation(format!("{id}: derivative {} missing", d.key));
                    }
                }
            }
        }
    }
    // 6
    for (stage, body) in &letters {
        for job in safelight::events::parse_jobs(body).unwrap_or_default() {
            let Some(row) = rows.get(&job.image_id) else {
                continue;
            };
            let intruder = matches!(&job.origin, safelight::Origin::Stored { version: Some(v) } if row.original_version.as_ref() != Some(v));
            if row.stage_status(*stage) != Status::Failed && !intruder {
                world.violation(format!(
                    "{}: a letter in the {stage} DLQ, but the stage is {}",
                    job.image_id,
                    row.stage_status(*stage)
                ));
            }
        }
    }
}

/// Every letter in both DLQs now: (stage, body).
fn dead_letters(world: &World) -> Vec<(Stage, String)> {
    letters_of(world, |m| m.body.clone())
}

/// What `pick` takes of every letter in both DLQs now, with its stage.
fn letters_of<T>(world: &World, pick: impl Fn(&crate::sqs::Stored) -> T) -> Vec<(Stage, T)> {
    let st = world.state();
    Stage::ALL
        .iter()
        .flat_map(|s| {
            st.queues
                .dead(*s)
                .messages
                .values()
                .map(|m| (*s, pick(m)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What a sweep must act on: the dead letters whose rows have been left unchanged for longer
/// than the sweep's patience, as they are when it starts.
#[derive(Debug, Default)]
pub struct SweepDuty {
    owed: Vec<(ImageId, Stage, u64)>,
}

/// The dead letters a sweep starting now owes a decision.
pub fn sweep_snapshot(world: &World, policy: &SweepPolicy) -> SweepDuty {
    let now = world.now_ms();
    let stale_before = now - policy.stale_after.as_millis() as i64;
    let letters = dead_letters(world);
    let rows: BTreeMap<ImageId, ImageRecord> = world
        .images
        .rows()
        .into_iter()
        .map(|r| (r.image_id, r))
        .collect();
    let mut owed = Vec::new();
    for (stage, body) in letters {
        for job in safelight::events::parse_jobs(&body).unwrap_or_default() {
            if let Some(row) = rows.get(&job.image_id) {
                if !row.stage_status(stage).is_terminal()
                    && row.updated_at.unix_millis() < stale_before
                {
                    owed.push((job.image_id, stage, row.version));
                }
            }
        }
    }
    SweepDuty { owed }
}

/// After a sweep that ended without error: each row it owed a decision is failed (or was
/// changed by someone else meanwhile).
pub fn after_sweep(world: &World, duty: &SweepDuty) {
    let rows: BTreeMap<ImageId, ImageRecord> = world
        .images
        .rows()
        .into_iter()
        .map(|r| (r.image_id, r))
        .collect();
    for (id, stage, version) in &duty.owed {
        let Some(row) = rows.get(id) else { continue };
        if row.stage_status(*stage) != Status::Failed && row.version == *version {
            world.violation(format!(
                "{id}: the sweep left its stale {stage} row behind while its letter was in the DLQ"
            ));
        }
    }
}

/// The ids of the letters in both DLQs now.
pub fn dead_letter_ids(world: &World) -> Vec<String> {
    letters_of(world, |m| m.id.clone())
        .into_iter()
        .map(|(_, id)| id)
        .collect()
}

/// After a retry-all run that said it was done: of the letters there when it started, no more
/// are left than it reported skipping.
pub fn after_retry_all(world: &World, before: &[String], skipped: u64) {
    let now = dead_letter_ids(world);
    let left = before.iter().filter(|id| now.contains(id)).count() as u64;
    if left > skipped {
        world.violation(format!(
            "retry-all said done with {left} of its {} letters still in the DLQs ({skipped} reported skipped)",
            before.len()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_never_expires_noncurrent_originals() {
        let prefixes = noncurrent_expiry_prefixes(TEMPLATE);
        assert!(!prefixes.is_empty(), "the template's rules were read");
        assert!(
            prefixes
                .iter()
                .all(|p| !p.is_empty() && !"originals/".starts_with(p.as_str())),
            "{prefixes:?}"
        );
    }

    #[test]
    fn the_lifecycle_prefixes_are_read_from_rules_that_expire_noncurrent_versions() {
        let template = "
      LifecycleConfiguration:
        Rules:
          - Id: expire-old-derivatives
            Status: Enabled
            Prefix: thumbnails/
            NoncurrentVersionExpiration:
              NoncurrentDays: 1
          - Id: abort-multipart
            Status: Enabled
            AbortIncompleteMultipartUpload:
              DaysAfterInitiation: 1
          - Id: whole-bucket
            Status: Enabled
            NoncurrentVersionExpiration:
              NoncurrentDays: 1
      Other:
";
        assert_eq!(
            noncurrent_expiry_prefixes(template),
            vec!["thumbnails/".to_owned(), String::new()]
        );
    }
}
