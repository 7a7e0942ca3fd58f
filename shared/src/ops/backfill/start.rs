//! How a start goes, from the run-once marker.

use super::{Marker, RunState};
use crate::domain::Timestamp;

/// How a start goes, from the marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Start {
    Fresh { forced: bool },
    Resume,
    Refused(String),
}

pub(super) fn plan_start(marker: Option<&Marker>, force: bool, now: Timestamp) -> Start {
    match marker {
        None => Start::Fresh { forced: force },
        Some(m) if m.state == RunState::Running && m.lease_until_ms > now.unix_millis() => {
            Start::Refused(format!(
                "run {} is in progress (started {}); try again after it stops",
                m.run_id, m.started_at
            ))
        }
        Some(m) if m.state == RunState::Completed && !force => Start::Refused(format!(
            "the migration already ran: run {} completed at {}; use --force to run it again",
            m.run_id,
            m.finished_at.unwrap_or(m.started_at)
        )),
        Some(m) if m.state == RunState::Completed => Start::Fresh { forced: true },
        // Stopped, failed, or running with a lapsed lease (the process died): carry on.
        Some(_) => Start::Resume,
    }
}
