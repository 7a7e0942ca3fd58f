//! The live-notice tables and the WebSocket management API in memory.

use super::*;
use crate::ports::{LogEntry, Progress, ReplayQuery};

fn realtime_failure(what: &str) -> RealtimeError {
    RealtimeError::Unavailable(format!("{what} set to fail").into())
}

/// The connections table in memory (expired rows stay, as in the emulator, and reads skip them).
#[derive(Debug, Default, Clone)]
pub struct MemoryConnections {
    rows: Arc<Mutex<BTreeMap<String, Connection>>>,
}

impl MemoryConnections {
    /// Puts a row directly (test setup), expired or not.
    pub fn insert(&self, connection: Connection) {
        lock(&self.rows).insert(connection.connection_id.clone(), connection);
    }

    /// A stored row, expired or not.
    pub fn row(&self, connection_id: &str) -> Option<Connection> {
        lock(&self.rows).get(connection_id).cloned()
    }

    /// Connection ids stored, expired ones included.
    pub fn ids(&self) -> Vec<String> {
        lock(&self.rows).keys().cloned().collect()
    }
}

impl ConnectionRepository for MemoryConnections {
    async fn put(&self, connection: &Connection) -> Result<(), RealtimeError> {
        self.insert(connection.clone());
        Ok(())
    }

    async fn get(&self, id: &str, now: Timestamp) -> Result<Option<Connection>, RealtimeError> {
        Ok(lock(&self.rows)
            .get(id)
            .filter(|c| c.expires_at > now)
            .cloned())
    }

    async fn delete(&self, connection_id: &str) -> Result<(), RealtimeError> {
        lock(&self.rows).remove(connection_id);
        Ok(())
    }

    async fn for_owner(
        &self,
        owner: &OwnerId,
        now: Timestamp,
    ) -> Result<Vec<Connection>, RealtimeError> {
        Ok(lock(&self.rows)
            .values()
            .filter(|c| &c.owner == owner && c.expires_at > now)
            .cloned()
            .collect())
    }
}

/// A logged notice: (notice, expires at, order of storing).
type Logged = (Notice, Timestamp, u64);

/// The notices table in memory: counters, the log (with expiry) and delivery records.
#[derive(Debug, Default, Clone)]
pub struct MemoryNotices {
    counters: Arc<Mutex<BTreeMap<OwnerId, u64>>>,
    log: Arc<Mutex<BTreeMap<(OwnerId, u64), Logged>>>,
    stored: Arc<std::sync::atomic::AtomicU64>,
    deliveries: Arc<Mutex<BTreeMap<String, Delivery>>>,
}

impl MemoryNotices {
    /// The owner's stored notices in seq order, expired ones included.
    pub fn stored(&self, owner: &OwnerId) -> Vec<Notice> {
        lock(&self.log)
            .iter()
            .filter(|((o, _), _)| o == owner)
            .map(|(_, (n, _, _))| n.clone())
            .collect()
    }

    /// Stores a notice directly (test setup), e.g. one that has already expired.
    pub fn insert(&self, owner: &OwnerId, notice: Notice, expires_at: Timestamp) {
        let order = self
            .stored
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        lock(&self.log).insert((owner.clone(), notice.seq), (notice, expires_at, order));
    }

    /// All delivery records by key.
    pub fn deliveries(&self) -> BTreeMap<String, Delivery> {
        lock(&self.deliveries).clone()
    }
}

impl NoticeLog for MemoryNotices {
    async fn next_seq(&self, owner: &OwnerId) -> Result<u64, RealtimeError> {
        let mut counters = lock(&self.counters);
        let seq = counters.entry(owner.clone()).or_insert(0);
        *seq += 1;
        Ok(*seq)
    }

    async fn claim(&self, key: &str, delivery: &Delivery) -> Result<Delivery, RealtimeError> {
        Ok(lock(&self.deliveries)
            .entry(key.to_owned())
            .or_insert_with(|| delivery.clone())
            .clone())
    }

    async fn record_progress(
        &self,
        key: &str,
        progress: &Progress<'_>,
    ) -> Result<(), RealtimeError> {
        let mut deliveries = lock(&self.deliveries);
        let d = deliveries.get_mut(key).ok_or_else(|| {
            RealtimeError::malformed("a delivery record", format!("no delivery record {key}"))
        })?;
        d.delivered = progress.delivered.clone();
        d.done = progress.done;
        Ok(())
    }

    async fn append(&self, entry: &LogEntry<'_>) -> Result<(), RealtimeError> {
        self.insert(entry.owner, entry.notice.clone(), entry.expires_at);
        Ok(())
    }

    async fn since(&self, query: &ReplayQuery<'_>) -> Result<crate::ports::Replay, RealtimeError> {
        let (owner, after, now, limit) = (query.owner, query.after, query.now, query.limit);
        let log = lock(&self.log);
        let after_stored = log.get(&(owner.clone(), after)).map(|(_, _, o)| *o);
        let from = after.saturating_sub(crate::ports::LATE_LOOKBACK);
        let mut notices: Vec<Notice> = log
            .range((owner.clone(), from)..=(owner.clone(), u64::MAX))
            .filter(|((_, seq), (_, _, order))| {
                *seq > after || (*seq < after && after_stored.is_some_and(|a| *order > a))
            })
            .filter(|(_, (_, expires_at, _))| *expires_at > now)
            .map(|(_, (n, _, _))| n.clone())
            .collect();
        // The late ones (below `after`) come first and do not count against the page.
        let late = notices.iter().filter(|n| n.seq < after).count();
        let more = notices.len() - late > limit;
        notices.truncate(late.saturating_add(limit));
        let next = notices
            .last()
            .map(|n| n.seq)
            .filter(|seq| more && *seq > after);
        Ok(crate::ports::Replay { notices, next })
    }
}

/// The WebSocket management API in memory: frames per connection; some connections can be made
/// gone (410) or failing (5xx).
#[derive(Debug, Default, Clone)]
pub struct MemoryPoster {
    frames: Arc<Mutex<Vec<(String, String)>>>,
    /// Connections that answer `410 Gone`.
    pub gone: Arc<Mutex<BTreeSet<String>>>,
    /// Connections whose posts fail as unavailable.
    pub failing: Arc<Mutex<BTreeSet<String>>>,
}

impl MemoryPoster {
    /// Every frame sent so far: (connection id, text).
    pub fn frames(&self) -> Vec<(String, String)> {
        lock(&self.frames).clone()
    }

    /// The frames one connection got, parsed as JSON.
    pub fn frames_to(&self, connection_id: &str) -> Vec<serde_json::Value> {
        lock(&self.frames)
            .iter()
            .filter(|(c, _)| c == connection_id)
            .filter_map(|(_, text)| serde_json::from_str(text).ok())
            .collect()
    }

    /// Makes a connection answer `410 Gone` from now on.
    pub fn make_gone(&self, connection_id: &str) {
        lock(&self.gone).insert(connection_id.to_owned());
    }

    /// Makes posts to a connection fail (`true`) or succeed again (`false`).
    pub fn set_failing(&self, connection_id: &str, failing: bool) {
        let mut set = lock(&self.failing);
        if failing {
            set.insert(connection_id.to_owned());
        } else {
            set.remove(connection_id);
        }
    }
}

impl ConnectionPoster for MemoryPoster {
    async fn post(
        &self,
        connection_id: &str,
        payload: &[u8],
    ) -> Result<PostOutcome, RealtimeError> {
        if lock(&self.failing).contains(connection_id) {
            return Err(realtime_failure("memory poster"));
        }
        if lock(&self.gone).contains(connection_id) {
            return Ok(PostOutcome::Gone);
        }
        let text = String::from_utf8_lossy(payload).into_owned();
        lock(&self.frames).push((connection_id.to_owned(), text));
        Ok(PostOutcome::Delivered)
    }
}
