//! The images table's change stream (NEW_AND_OLD_IMAGES) -> live notices to the owner's
//! WebSocket connections.
//!
//! For each stream record, in order: read the old and new rows, derive the notices the change
//! calls for ([`safelight::notice::transitions`]), and for each of them:
//!
//! 1. create its **delivery record**, keyed by (stream `eventID`, notice type): it takes the
//!    owner's next `seq` (an atomic counter) and is a conditional put, so the notice and its
//!    number are fixed once, whatever happens later (a redelivered record gets the one that won,
//!    and its seq is left unused: resume does not mind gaps);
//! 2. **append** the notice to the owner's replay log (24 h) — before any send, so a client that
//!    misses the frame finds it on `resume`;
//! 3. **send** it to every live connection of the owner not yet served ([`SEND_CONCURRENCY`]
//!    posts in flight; the owner's connections are read once per record); `410 Gone` removes
//!    that connection's row and counts as served; other failures fail the record. Between chunks of [`SEND_CHUNK`] connections the invocation's
//!    time budget is checked: a fan-out too large for one invocation records its progress and
//!    fails the record, and the retry carries on where it stopped;
//! 4. only when the record fails: record, for each of its notices, which connections were
//!    served and whether all were (`done`), so the retry reaches only the others. A record that
//!    succeeds writes nothing more: the stream does not redeliver it unless the invocation dies
//!    before answering, and then a socket may see a frame twice with the same seq, which the
//!    client drops (it deduplicates by `(image_id, seq)`).
//!
//! The invocation that creates a `complete` or `failed` delivery record also adds the image to
//! the per-minute throughput counters in the control table (the admin view's chart).
//!
//! A redelivered record (a retry after a failure) finds the delivery records: done ones are
//! skipped, unfinished ones resume at step 2 with the same seq and only reach the connections
//! that did not get it. So one change gives one notice number, and each connection gets it once
//! (twice only after an invocation died mid-record, deduplicated by the client).
//!
//! Failures: the first record that fails is reported in `batchItemFailures` together with every
//! record after it (not attempted, so notices keep their order); the stream retries from there.
//! A row that is not an image record can never yield a notice and is skipped with a warning
//! rather than blocking the shard.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::stream::{self, StreamExt};
use futures::FutureExt;
use safelight::notice::{transitions, DELIVERY_TTL_SECS, NOTICE_TTL_SECS};
use safelight::ports::{
    ConnectionPoster, ConnectionRepository, Delivery, LogEntry, NoticeLog, Outcome, PostOutcome,
    Progress, RealtimeError, ThroughputLog,
};
use safelight::{ImageRecord, Notice, NoticeType, Timestamp};
use tracing::Instrument;

/// How many `PostToConnection` calls one notice has in flight at once.
pub const SEND_CONCURRENCY: usize = 32;
/// How many connections are served between two checks of the time budget.
pub const SEND_CHUNK: usize = 128;
/// Time kept back from the function timeout to record progress and answer.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// Why a stream record could not be processed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A table or the management API failed.
    #[error(transparent)]
    Realtime(#[from] RealtimeError),
    /// A notice could not be serialised (cannot happen with the types involved).
    #[error("notice could not be serialised: {0}")]
    Serialise(#[from] serde_json::Error),
    /// The invocation's time budget ran out mid fan-out; progress is recorded, the retry
    /// continues with the connections left.
    #[error("time budget spent after serving {served} connections, {left} left")]
    OutOfTime {
        /// Connections served so far (this notice).
        served: usize,
        /// Connections still to serve.
        left: usize,
    },
}

/// What one notice reached.
#[derive(Debug)]
struct Sent {
    /// Its delivery record.
    key: String,
    /// The connections served, this time and before.
    served: BTreeSet<String>,
    /// Whether every connection was served.
    done: bool,
    /// Whether the delivery record already says so (nothing to record).
    recorded: bool,
}

/// The handler with its ports.
#[derive(Debug)]
pub struct Notify<C, N, P, T> {
    connections: C,
    notices: N,
    poster: P,
    throughput: T,
}

/// Reads a stream image as an image row; `None` when the image is absent (insert / remove).
pub fn stream_row(image: &serde_dynamo::Item) -> Option<Result<ImageRecord, String>> {
    if image.is_empty() {
        return None;
    }
    Some(serde_dynamo::from_item(image.clone()).map_err(|e| e.to_string()))
}

/// The key of a delivery record: one per (stream record, notice type).
pub fn delivery_key(event_id: &str, kind: NoticeType) -> String {
    format!("{event_id}#{kind}")
}

/// The instant to stop starting sends: the invocation deadline (Lambda's context gives it in
/// milliseconds since the epoch) minus [`DEADLINE_MARGIN`].
pub fn deadline_from_epoch_millis(deadline_ms: u64) -> Instant {
    let left = safelight::domain::time::until_epoch_millis(deadline_ms);
    Instant::now() + left.saturating_sub(DEADLINE_MARGIN)
}

fn failure(record: &EventRecord) -> DynamoDbBatchItemFailure {
    let mut f = DynamoDbBatchItemFailure::default();
    // The stream's checkpoint is the sequence number; the event id stands in if it is missing.
    f.item_identifier = Some(
        record
            .change
            .sequence_number
            .clone()
            .unwrap_or_else(|| record.event_id.clone()),
    );
    f
}

impl<C, N, P, T> Notify<C, N, P, T>
where
    C: ConnectionRepository,
    N: NoticeLog,
    P: ConnectionPoster,
    T: ThroughputLog,
{
    /// A handler on these ports.
    pub fn new(connections: C, notices: N, poster: P, throughput: T) -> Self {
        Notify {
            connections,
            notices,
            poster,
            throughput,
        }
    }

    /// Handles a batch; failed records (and those after them) are reported for a retry. No new
    /// chunk of sends starts after `deadline` (see [`deadline_from_epoch_millis`]).
    pub async fn handle(&self, event: &Event, deadline: Instant) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        for (i, record) in event.records.iter().enumerate() {
            let span = tracing::info_span!(
                "record",
                event_id = %record.event_id,
                image_id = tracing::field::Empty,
                owner = tracing::field::Empty,
            );
            if let Err(e) = self.process(record, deadline).instrument(span).await {
                tracing::error!(
                    event_id = %record.event_id,
                    error = %e,
                    retried = event.records.len() - i,
                    "stream record failed; it and the records after it will be retried"
                );
                response.batch_item_failures = event.records[i..].iter().map(failure).collect();
                break;
            }
        }
        response
    }

    async fn process(&self, record: &EventRecord, deadline: Instant) -> Result<(), NotifyError> {
        let Some(new) = stream_row(&record.change.new_image) else {
            return Ok(()); // a removal: nothing became anything
        };
        let new = match new {
            Ok(row) => row,
            Err(reason) => {
                tracing::warn!(event_id = %record.event_id, reason, "not an image row; no notice");
                return Ok(());
            }
        };
        // An unreadable old image counts as "no old row": at worst a notice is repeated.
        let old = stream_row(&record.change.old_image).and_then(Result::ok);
        let kinds = transitions(old.as_ref(), &new);
        let span = tracing::Span::current();
        span.record("image_id", tracing::field::display(new.image_id));
        span.record("owner", tracing::field::display(&new.owner_id));
        // The owner's connections, read once for every notice of this record.
        let mut connections = None;
        let mut sent: Vec<Sent> = Vec::with_capacity(kinds.len());
        let mut failure = None;
        for kind in kinds {
            // Boxed: the nested adapter futures otherwise exceed the compiler's type depth limit.
            match self
                .deliver(&record.event_id, kind, &new, &mut connections, deadline)
                .boxed()
                .await
            {
                Ok((one, None)) => sent.push(one),
                Ok((one, Some(e))) => {
                    sent.push(one);
                    failure = Some(e);
                    break;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let Some(failure) = failure else {
            // Every notice reached every connection: nothing to record. The stream redelivers a
            // record only when it, or one before it, is reported failed (and then the progress
            // below is recorded first), or when the invocation dies before answering: a socket
            // may then see a frame again, with the same seq, which the client drops.
            return Ok(());
        };
        // The record will be retried: record what each of its notices reached, so the retry
        // sends each only to the connections it did not reach.
        for one in sent.iter().filter(|one| !one.recorded) {
            self.notices
                .record_progress(
                    &one.key,
                    &Progress {
                        delivered: &one.served,
                        done: one.done,
                    },
                )
                .await?;
        }
        Err(failure)
    }

    /// Counts an image reaching `completed` or `failed` in the per-minute throughput counters.
    /// Only the invocation whose delivery record won counts, so a redelivered stream record does
    /// not count twice. Best effort: a counter that cannot be written costs the chart one image,
    /// never a notice.
    async fn count(&self, kind: NoticeType, now: Timestamp) {
        let outcome = match kind {
            NoticeType::Complete => Outcome::Processed,
            NoticeType::Failed => Outcome::Failed,
            NoticeType::ThumbnailComplete | NoticeType::VariantComplete => return,
        };
        if let Err(e) = self.throughput.count(now, outcome).await {
            tracing::warn!(error = %e, "could not count the image in the throughput chart");
        }
    }

    /// Numbers, logs and sends one notice. `Err` when nothing was sent (the record is retried
    /// from scratch); else what it reached, with the error that stopped it, if any.
    async fn deliver(
        &self,
        event_id: &str,
        kind: NoticeType,
        row: &ImageRecord,
        connections: &mut Option<Vec<String>>,
        deadline: Instant,
    ) -> Result<(Sent, Option<NotifyError>), NotifyError> {
        let key = delivery_key(event_id, kind);
        let now = Timestamp::now();
        // No read first: a stream record is nearly always new, and the claim is conditional, so a
        // redelivered one gets the delivery record that won (its number and progress); the seq
        // it drew is left unused (a gap the client's resume does not mind).
        let seq = self.notices.next_seq(&row.owner_id).await?;
        let fresh = Delivery {
            owner: row.owner_id.clone(),
            notice: Notice::new(kind, row, seq),
            delivered: BTreeSet::new(),
            done: false,
            expires_at: now.plus_secs(DELIVERY_TTL_SECS),
        };
        let delivery = self.notices.claim(&key, &fresh).await?;
        if delivery.notice.seq == seq {
            self.count(kind, now).await;
            if kind == NoticeType::Complete {
                let took = now.unix_millis() - row.created_at.unix_millis();
                safelight::metrics::upload_to_complete(std::time::Duration::from_millis(
                    u64::try_from(took).unwrap_or(0),
                ));
            }
        }
        if delivery.done {
            tracing::info!(kind = %kind, seq = delivery.notice.seq, "already delivered");
            let sent = Sent {
                key,
                served: delivery.delivered,
                done: true,
                recorded: true,
            };
            return Ok((sent, None));
        }
        let owner = &delivery.owner;
        let notice = &delivery.notice;
        self.notices
            .append(&LogEntry {
                owner,
                notice,
                expires_at: now.plus_secs(NOTICE_TTL_SECS),
            })
            .await?;
        let payload = serde_json::to_vec(notice)?;
        let mut served = delivery.delivered.clone();
        let live = match connections {
            Some(live) => live,
            None => connections.insert(
                self.connections
                    .for_owner(owner, now)
                    .await?
                    .into_iter()
                    .map(|c| c.connection_id)
                    .collect(),
            ),
        };
        let pending: Vec<String> = live
            .iter()
            .filter(|id| !served.contains(*id))
            .cloned()
            .collect();
        // Posts run side by side, in chunks; between chunks the invocation's time budget is
        // checked, so a large fan-out stops with its progress recorded instead of being cut off
        // by the function timeout (which would make the retry send everything again).
        let mut first_error = None;
        let mut gone = 0_usize;
        for chunk in pending.chunks(SEND_CHUNK) {
            let outcomes: Vec<(String, Result<PostOutcome, RealtimeError>)> =
                stream::iter(chunk.iter().cloned())
                    .map(|id| {
                        let payload = &payload;
                        async move {
                            let outcome = self.poster.post(&id, payload).await;
                            (id, outcome)
                        }
                    })
                    .buffer_unordered(SEND_CONCURRENCY)
                    .collect()
                    .await;
            for (id, outcome) in outcomes {
                match outcome {
                    Ok(PostOutcome::Delivered) => {
                        safelight::metrics::notice_sent(kind.as_str());
                        served.insert(id);
                    }
                    Ok(PostOutcome::Gone) => match self.connections.delete(&id).await {
                        Ok(()) => {
                            gone += 1;
                            served.insert(id);
                        }
                        Err(e) => {
                            first_error.get_or_insert(NotifyError::from(e));
                        }
                    },
                    Err(e) => {
                        tracing::warn!(connection_id = %id, error = %e, "post failed");
                        first_error.get_or_insert(NotifyError::from(e));
                    }
                }
            }
            let left = pending.iter().filter(|id| !served.contains(*id)).count();
            if left > 0 && Instant::now() >= deadline {
                first_error.get_or_insert(NotifyError::OutOfTime {
                    served: served.len(),
                    left,
                });
                break;
            }
        }
        let done = first_error.is_none();
        tracing::info!(
            kind = %kind,
            seq = notice.seq,
            connections = served.len(),
            gone,
            done,
            "notice sent"
        );
        let sent = Sent {
            key,
            served,
            done,
            recorded: false,
        };
        Ok((sent, first_error))
    }
}
