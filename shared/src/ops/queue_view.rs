//! `GET /api/admin/processing-queue`: the whole processing system on one page. Every figure
//! comes from an index query, a queue attribute or a keyed read; nothing scans the images table,
//! and nothing reads the completed rows (most of the table): their count is a counter.

use serde::Serialize;

use super::circuits::CircuitView;
use crate::breaker::BreakerConfig;
use crate::domain::{ErrorKind, ImageId, OwnerId, Stage, Status, Timestamp, UploadState};
use crate::ports::{
    ControlStore, MinuteCount, QueueAdmin, QueueDepth, StatusIndex, StatusPage, ThroughputLog,
};

/// How many recent failures the view lists.
pub const RECENT_FAILURES: u32 = 20;
/// How many minutes of throughput the chart shows.
pub const THROUGHPUT_MINUTES: u32 = 60;
/// Pages of the pending index read to find the oldest image that is waiting for processing
/// (rows still waiting for their upload are passed over).
const OLDEST_PENDING_PAGES: usize = 5;
const OLDEST_PENDING_PAGE: u32 = 100;

/// Image counts by `processing_status`: `completed` from the completed counter, the others
/// from COUNT queries over the sparse `by_status_v2` shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    /// `pending` (awaiting upload or queued).
    pub pending: u64,
    /// `processing`.
    pub processing: u64,
    /// `completed`.
    pub completed: u64,
    /// `failed`.
    pub failed: u64,
}

/// A stage's queue and its DLQ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// The stage the queue feeds.
    pub stage: Stage,
    /// Ready to be received.
    pub visible: u64,
    /// Received and being worked on (or waiting for a retry's backoff).
    pub in_flight: u64,
    /// Sent with a delay (e.g. deferred while the breaker is open).
    pub delayed: u64,
    /// The dead-letter queue.
    pub dlq: QueueDepth,
}

/// The image that has waited longest for processing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OldestPending {
    /// Its id.
    pub image_id: ImageId,
    /// Seconds since it became pending.
    pub age_secs: u64,
}

/// One recent failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureView {
    /// The image.
    pub image_id: ImageId,
    /// Its owner.
    pub owner_id: OwnerId,
    /// The stage that failed (the thumbnail stage when both did).
    pub stage: Stage,
    /// The readable reason.
    pub error: Option<String>,
    /// `transient`, `permanent` or `rejected`.
    pub error_kind: Option<ErrorKind>,
    /// When it failed.
    pub at: Timestamp,
}

/// The whole view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueView {
    /// When it was put together.
    pub generated_at: Timestamp,
    /// Images by status.
    pub counts: StatusCounts,
    /// Per stage: queue and DLQ depths.
    pub queues: Vec<QueueStats>,
    /// Per stage: the breaker.
    pub circuits: Vec<CircuitView>,
    /// The image waiting longest, if any.
    pub oldest_pending: Option<OldestPending>,
    /// The latest failures, newest first.
    pub recent_failures: Vec<FailureView>,
    /// Images completed / failed per minute, oldest first, the current minute last.
    pub throughput: Vec<MinuteCount>,
}

/// Why the view could not be put together: a table or a queue's attributes could not be read.
pub type ViewError = super::PortError;

/// The ports the view reads.
#[derive(Debug)]
pub struct ViewPorts<'a, R, Q, C, T> {
    /// The images table's `by_status_v2` index.
    pub index: &'a R,
    /// The queues.
    pub queues: &'a Q,
    /// The breakers.
    pub control: &'a C,
    /// The throughput counters and the completed total.
    pub throughput: &'a T,
}

/// Puts the view together at `now`; the reads run side by side.
pub async fn queue_view<R, Q, C, T>(
    ports: ViewPorts<'_, R, Q, C, T>,
    breaker: &BreakerConfig,
    now: Timestamp,
) -> Result<QueueView, ViewError>
where
    R: StatusIndex,
    Q: QueueAdmin,
    C: ControlStore,
    T: ThroughputLog,
{
    // Completed rows are not in the index: their count is the completed counter (one
    // BatchGetItem); the other statuses are the sparse index's shards, which hold only the rows
    // in flight or failed.
    let counts = async {
        let (pending, processing, completed, failed) = futures::try_join!(
            ports.index.count_by_status(Status::Pending),
            ports.index.count_by_status(Status::Processing),
            ports.throughput.completed_total(),
            ports.index.count_by_status(Status::Failed),
        )?;
        Ok::<_, ViewError>(StatusCounts {
            pending,
            processing,
            completed,
            failed,
        })
    };
    let queues = async {
        let mut out = Vec::new();
        for stage in Stage::ALL {
            let (main, dlq) = futures::try_join!(
                ports.queues.depth(stage, false),
                ports.queues.depth(stage, true)
            )?;
            out.push(QueueStats {
                stage,
                visible: main.visible,
                in_flight: main.in_flight,
                delayed: main.delayed,
                dlq,
            });
        }
        Ok::<_, ViewError>(out)
    };
    let circuits = async {
        let mut out = Vec::new();
        for stage in Stage::ALL {
            let (b, _) = ports.control.load_breaker(stage).await?;
            out.push(CircuitView::new(stage, &b, now, breaker));
        }
        Ok::<_, ViewError>(out)
    };
    let failures = async {
        let page = ports
            .index
            .page_by_status(StatusPage::newest_first(Status::Failed, RECENT_FAILURES))
            .await?;
        Ok::<_, ViewError>(
            page.items
                .into_iter()
                .map(|r| FailureView {
                    image_id: r.image_id,
                    owner_id: r.owner_id.clone(),
                    stage: if r.thumbnail_status == Status::Failed {
                        Stage::Thumbnail
                    } else {
                        Stage::Variant
                    },
                    error: r.processing_error,
                    error_kind: r.error_kind,
                    at: r.processing_completed_at.unwrap_or(r.updated_at),
                })
                .collect::<Vec<_>>(),
        )
    };
    let throughput =
        async { Ok::<_, ViewError>(ports.throughput.recent(now, THROUGHPUT_MINUTES).await?) };
    let (counts, queues, circuits, recent_failures, throughput, oldest_pending) = futures::try_join!(
        counts,
        queues,
        circuits,
        failures,
        throughput,
        oldest_pending(ports.index, now)
    )?;
    Ok(QueueView {
        generated_at: now,
        counts,
        queues,
        circuits,
        oldest_pending,
        recent_failures,
        throughput,
    })
}

/// The image pending for longest (`status_since`, the index's order) whose original is stored
/// (a row still waiting for its upload is not waiting for processing).
async fn oldest_pending<R: StatusIndex>(
    index: &R,
    now: Timestamp,
) -> Result<Option<OldestPending>, ViewError> {
    let mut cursor: Option<String> = None;
    for _ in 0..OLDEST_PENDING_PAGES {
        let page = index
            .page_by_status(
                StatusPage::oldest_first(Status::Pending, OLDEST_PENDING_PAGE)
                    .after(cursor.as_deref()),
            )
            .await?;
        if let Some(r) = page
            .items
            .iter()
            .find(|r| r.upload_state != UploadState::AwaitingUpload)
        {
            let age_ms = (now.unix_millis() - r.status_since().unix_millis()).max(0);
            return Ok(Some(OldestPending {
                image_id: r.image_id,
                age_secs: u64::try_from(age_ms / 1000).unwrap_or(0),
            }));
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(None)
}
