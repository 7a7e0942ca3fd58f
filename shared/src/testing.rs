//! In-memory fakes of the ports, for handler tests (feature `testing`). They keep the semantics
//! handlers rely on: not-found, conditional create, version-checked update, newest-first paging.
//! They hold no failure switch of their own: a test that needs a port to fail wraps the fake in
//! the fault decorator, `faults::Faulty<MemoryStore, faults::Switch>` (as the local stack wraps the
//! AWS adapters), and turns the switch on.
//! Also the engine's generator of the decode-budget sample ([`png_rgba16_one_colour`]), for the
//! pipeline suite, the simulation and `cargo run -p safelight-e2e --bin bomb`.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::breaker::Breaker;
use crate::domain::{ImageId, ImageRecord, ObjectKey, OwnerId, RetryMessage, Stage, Timestamp};
use crate::ports::{
    ControlStore, Holder, ImageRepository, JobQueue, Lease, LeaseView, ObjectMeta, ObjectStore,
    Page, PresignedPost, PresignedRequest, QueueError, RepoError, StoreError, StoredObject,
    UploadConstraints,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A bucket in memory with versioning: key -> its versions, oldest first, the last one current.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, Vec<MemoryVersion>>>,
    minted: Mutex<u64>,
}

#[derive(Debug, Clone)]
struct MemoryVersion {
    id: String,
    bytes: Vec<u8>,
    content_type: String,
}

impl MemoryStore {
    /// Keys currently stored.
    pub fn keys(&self) -> Vec<String> {
        lock(&self.objects)
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// An object's current bytes and content type.
    pub fn object(&self, key: &str) -> Option<(Vec<u8>, String)> {
        lock(&self.objects)
            .get(key)
            .and_then(|v| v.last())
            .map(|v| (v.bytes.clone(), v.content_type.clone()))
    }

    /// The ids of an object's versions, oldest first (the last one is current).
    pub fn versions(&self, key: &str) -> Vec<String> {
        lock(&self.objects)
            .get(key)
            .map(|v| v.iter().map(|v| v.id.clone()).collect())
            .unwrap_or_default()
    }

    /// Puts an object directly (test setup) as a new current version; returns its id.
    pub fn insert(&self, key: &str, body: Vec<u8>, content_type: &str) -> String {
        let id = {
            let mut minted = lock(&self.minted);
            *minted += 1;
            format!("v{minted}")
        };
        lock(&self.objects)
            .entry(key.to_owned())
            .or_default()
            .push(MemoryVersion {
                id: id.clone(),
                bytes: body,
                content_type: content_type.to_owned(),
            });
        id
    }
}

impl ObjectStore for MemoryStore {
    async fn put(
        &self,
        key: &ObjectKey,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.insert(key.as_str(), body, content_type);
        Ok(())
    }

    async fn get(
        &self,
        key: &ObjectKey,
        version: Option<&str>,
    ) -> Result<StoredObject, StoreError> {
        let objects = lock(&self.objects);
        let versions = objects
            .get(key.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let found = match version {
            Some(id) => versions.iter().find(|v| v.id == id),
            None => versions.last(),
        };
        found
            .map(|v| StoredObject {
                bytes: v.bytes.clone(),
                version: Some(v.id.clone()),
            })
            .ok_or_else(|| StoreError::NotFound(key.to_string()))
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, StoreError> {
        Ok(lock(&self.objects)
            .get(key.as_str())
            .and_then(|v| v.last())
            .map(|v| ObjectMeta {
                size: v.bytes.len() as u64,
                content_type: Some(v.content_type.clone()),
                version: Some(v.id.clone()),
            }))
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        lock(&self.objects).remove(key.as_str());
        Ok(())
    }

    async fn delete_version(&self, key: &ObjectKey, version: &str) -> Result<(), StoreError> {
        if let Some(versions) = lock(&self.objects).get_mut(key.as_str()) {
            versions.retain(|v| v.id != version);
        }
        Ok(())
    }

    async fn presign_put(
        &self,
        key: &ObjectKey,
        c: &UploadConstraints,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        let mut headers = BTreeMap::from([
            ("content-type".to_owned(), c.content_type.clone()),
            ("content-length".to_owned(), c.content_length.to_string()),
        ]);
        if let Some(sum) = &c.sha256_base64 {
            headers.insert("x-amz-checksum-sha256".to_owned(), sum.clone());
        }
        Ok(PresignedRequest {
            method: "PUT".into(),
            url: format!("https://memory.invalid/{key}?X-Amz-Signature=fake"),
            headers,
            expires_at: Timestamp::now().plus_secs(expires_in.as_secs() as i64),
        })
    }

    async fn presign_post(
        &self,
        key: &ObjectKey,
        c: &UploadConstraints,
        expires_in: Duration,
    ) -> Result<PresignedPost, StoreError> {
        Ok(PresignedPost {
            url: "https://memory.invalid/".into(),
            fields: BTreeMap::from([
                ("key".to_owned(), key.to_string()),
                ("Content-Type".to_owned(), c.content_type.clone()),
                ("policy".to_owned(), format!("max={}", c.content_length)),
            ]),
            expires_at: Timestamp::now().plus_secs(expires_in.as_secs() as i64),
        })
    }
}

impl crate::ports::Downloads for MemoryStore {
    /// A fake URL that names the key, the version and the window, so tests see what the real
    /// adapters sign.
    async fn link(
        &self,
        key: &ObjectKey,
        version: Option<&str>,
        window: crate::domain::LinkWindow,
    ) -> Result<String, StoreError> {
        let signed = window.signed_at.unix_millis() / 1000;
        let expires = window.lifetime.as_secs();
        Ok(match version {
            Some(v) => format!("https://memory.invalid/{key}?versionId={v}&X-Amz-Date={signed}&X-Amz-Expires={expires}&X-Amz-Signature=fake"),
            None => format!("https://memory.invalid/{key}?X-Amz-Date={signed}&X-Amz-Expires={expires}&X-Amz-Signature=fake"),
        })
    }
}

/// The images table in memory.
#[derive(Debug, Default)]
pub struct MemoryImages {
    rows: Mutex<BTreeMap<ImageId, ImageRecord>>,
    legacy: Mutex<BTreeMap<ImageId, crate::domain::LegacyRow>>,
    /// Rows written before `by_status_v2` existed: without a `status_key` (so not in the index)
    /// until a write through the repository or the backfill gives them one.
    unindexed: Mutex<std::collections::BTreeSet<ImageId>>,
}

impl MemoryImages {
    /// All rows.
    pub fn rows(&self) -> Vec<ImageRecord> {
        lock(&self.rows).values().cloned().collect()
    }

    /// Puts a row directly (test setup), as the images adapter writes it (indexed by status).
    pub fn insert(&self, record: ImageRecord) {
        lock(&self.unindexed).remove(&record.image_id);
        lock(&self.rows).insert(record.image_id, record);
    }

    /// Puts a row as a release before `by_status_v2` wrote it: without a `status_key`.
    pub fn insert_unindexed(&self, record: ImageRecord) {
        lock(&self.unindexed).insert(record.image_id);
        lock(&self.rows).insert(record.image_id, record);
    }

    /// Whether the row is in `by_status_v2` (it has a `status_key`).
    pub fn in_status_index(&self, id: ImageId) -> bool {
        lock(&self.rows).get(&id).is_some_and(|r| {
            crate::status_index::indexed(r.processing_status)
                && !lock(&self.unindexed).contains(&id)
        })
    }
}

impl ImageRepository for MemoryImages {
    async fn create(&self, record: &ImageRecord) -> Result<(), RepoError> {
        let mut rows = lock(&self.rows);
        if rows.contains_key(&record.image_id) || lock(&self.legacy).contains_key(&record.image_id)
        {
            return Err(RepoError::Conflict);
        }
        lock(&self.unindexed).remove(&record.image_id);
        rows.insert(record.image_id, record.clone());
        Ok(())
    }

    async fn get(&self, id: ImageId) -> Result<Option<ImageRecord>, RepoError> {
        Ok(lock(&self.rows).get(&id).cloned())
    }

    async fn list_by_owner(
        &self,
        owner: &OwnerId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<ImageRecord>, RepoError> {
        let after: Option<ImageId> = cursor
            .map(|c| c.parse().map_err(|_| RepoError::BadCursor))
            .transpose()?;
        let mut mine: Vec<ImageRecord> = lock(&self.rows)
            .values()
            .filter(|r| &r.owner_id == owner)
            .cloned()
            .collect();
        mine.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.image_id)));
        let start = after.map_or(0, |id| {
            mine.iter()
                .position(|r| r.image_id == id)
                .map_or(mine.len(), |p| p + 1)
        });
        let items: Vec<ImageRecord> = mine
            .iter()
            .skip(start)
            .take(limit as usize)
            .cloned()
            .collect();
        let next = (start + items.len() < mine.len())
            .then(|| items.last().map(|r| r.image_id.to_string()))
            .flatten();
        Ok(Page { items, next })
    }

    async fn update(&self, record: &mut ImageRecord) -> Result<(), RepoError> {
        let mut rows = lock(&self.rows);
        match rows.get(&record.image_id) {
            Some(current) if current.version == record.version => {
                record.version += 1;
                lock(&self.unindexed).remove(&record.image_id);
                rows.insert(record.image_id, record.clone());
                Ok(())
            }
            _ => Err(RepoError::Conflict),
        }
    }

    async fn delete(&self, id: ImageId) -> Result<(), RepoError> {
        lock(&self.rows).remove(&id);
        Ok(())
    }
}

/// The job queues in memory: what was sent and what was delayed.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    /// Messages sent, in order.
    pub sent: Mutex<Vec<RetryMessage>>,
    /// Visibility changes: (stage, receipt handle, delay).
    pub delays: Mutex<Vec<(Stage, String, Duration)>>,
    /// Deferred copies: (stage, body, delay).
    pub requeued: Mutex<Vec<(Stage, String, Duration)>>,
    /// The `deferred_since` each copy carried, in the order of `requeued`.
    pub deferred_since: Mutex<Vec<Option<Timestamp>>>,
}

impl MemoryQueue {
    /// Deferred copies so far.
    pub fn requeued(&self) -> Vec<(Stage, String, Duration)> {
        lock(&self.requeued).clone()
    }

    /// Messages sent so far.
    pub fn sent(&self) -> Vec<RetryMessage> {
        lock(&self.sent).clone()
    }

    /// Visibility changes so far.
    pub fn delays(&self) -> Vec<(Stage, String, Duration)> {
        lock(&self.delays).clone()
    }
}

impl JobQueue for MemoryQueue {
    async fn enqueue(&self, message: &RetryMessage) -> Result<(), QueueError> {
        lock(&self.sent).push(message.clone());
        Ok(())
    }

    async fn delay(
        &self,
        stage: Stage,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), QueueError> {
        lock(&self.delays).push((stage, receipt_handle.to_owned(), delay));
        Ok(())
    }

    async fn requeue(
        &self,
        stage: Stage,
        body: &str,
        delay: Duration,
        deferred_since: Option<Timestamp>,
    ) -> Result<(), QueueError> {
        lock(&self.requeued).push((stage, body.to_owned(), delay));
        lock(&self.deferred_since).push(deferred_since);
        Ok(())
    }
}

// ----------------------------------------------------------------------------- live notices

use std::collections::BTreeSet;

use crate::domain::Notice;
use crate::ports::{
    Connection, ConnectionPoster, ConnectionRepository, Delivery, NoticeLog, PostOutcome,
    RealtimeError,
};

fn realtime_failure(what: &str) -> RealtimeError {
    RealtimeError::Unavailable(format!("{what} set to fail").into())
}

/// The connections table in memory (expired rows stay, as in the emulator, and reads skip them).
#[derive(Debug, Default)]
pub struct MemoryConnections {
    rows: Mutex<BTreeMap<String, Connection>>,
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

    async fn get(
        &self,
        connection_id: &str,
        now: Timestamp,
    ) -> Result<Option<Connection>, RealtimeError> {
        Ok(lock(&self.rows)
            .get(connection_id)
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
#[derive(Debug, Default)]
pub struct MemoryNotices {
    counters: Mutex<BTreeMap<OwnerId, u64>>,
    log: Mutex<BTreeMap<(OwnerId, u64), Logged>>,
    stored: std::sync::atomic::AtomicU64,
    deliveries: Mutex<BTreeMap<String, Delivery>>,
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
        delivered: &BTreeSet<String>,
        done: bool,
    ) -> Result<(), RealtimeError> {
        let mut deliveries = lock(&self.deliveries);
        let d = deliveries.get_mut(key).ok_or_else(|| {
            RealtimeError::malformed("a delivery record", format!("no delivery record {key}"))
        })?;
        d.delivered = delivered.clone();
        d.done = done;
        Ok(())
    }

    async fn append(
        &self,
        owner: &OwnerId,
        notice: &Notice,
        expires_at: Timestamp,
    ) -> Result<(), RealtimeError> {
        self.insert(owner, notice.clone(), expires_at);
        Ok(())
    }

    async fn since(
        &self,
        owner: &OwnerId,
        after: u64,
        now: Timestamp,
        limit: usize,
    ) -> Result<crate::ports::Replay, RealtimeError> {
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
#[derive(Debug, Default)]
pub struct MemoryPoster {
    frames: Mutex<Vec<(String, String)>>,
    /// Connections that answer `410 Gone`.
    pub gone: Mutex<BTreeSet<String>>,
    /// Connections whose posts fail as unavailable.
    pub failing: Mutex<BTreeSet<String>>,
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

/// The owners' digest index in memory, with the adapter's conditional writes.
#[derive(Debug, Default)]
pub struct MemoryDigests {
    claims: Mutex<BTreeMap<(OwnerId, String), ImageId>>,
}

impl MemoryDigests {
    /// The image holding `sha256` of `owner`, if any.
    pub fn holder(&self, owner: &OwnerId, sha256: &str) -> Option<ImageId> {
        lock(&self.claims)
            .get(&(owner.clone(), sha256.to_owned()))
            .copied()
    }
}

impl crate::ports::DigestIndex for MemoryDigests {
    async fn claim(
        &self,
        owner: &OwnerId,
        sha256: &str,
        image: ImageId,
    ) -> Result<Option<ImageId>, RepoError> {
        let mut claims = lock(&self.claims);
        let slot = claims.entry((owner.clone(), sha256.to_owned()));
        match slot {
            std::collections::btree_map::Entry::Occupied(held) => Ok(Some(*held.get())),
            std::collections::btree_map::Entry::Vacant(free) => {
                free.insert(image);
                Ok(None)
            }
        }
    }

    async fn reclaim(
        &self,
        owner: &OwnerId,
        sha256: &str,
        from: ImageId,
        to: ImageId,
    ) -> Result<bool, RepoError> {
        let mut claims = lock(&self.claims);
        match claims.get_mut(&(owner.clone(), sha256.to_owned())) {
            Some(held) if *held == from => {
                *held = to;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// The control table in memory: breakers with versions, and leases.
#[derive(Debug, Default)]
pub struct MemoryControl {
    breakers: Mutex<BTreeMap<Stage, (Breaker, u64)>>,
    leases: Mutex<BTreeMap<(Stage, ImageId), LeaseView>>,
}

impl MemoryControl {
    /// A stage's breaker as stored.
    pub fn breaker(&self, stage: Stage) -> Breaker {
        lock(&self.breakers)
            .get(&stage)
            .map(|(b, _)| b.clone())
            .unwrap_or_default()
    }

    /// Replaces a stage's breaker (test setup).
    pub fn set_breaker(&self, stage: Stage, breaker: Breaker) {
        let mut all = lock(&self.breakers);
        let version = all.get(&stage).map_or(0, |(_, v)| *v) + 1;
        all.insert(stage, (breaker, version));
    }

    /// Gives a lease to `holder`'s first receive (test setup): taken once, not marked out of
    /// time.
    pub fn hold_lease(&self, stage: Stage, image: ImageId, holder: &str, until: Timestamp) {
        self.set_lease(
            stage,
            image,
            LeaseView {
                holder: holder.to_owned(),
                receive: 1,
                until,
                attempts: 1,
                ran_out_of_time: false,
            },
        );
    }

    /// Stores a lease as given (test setup).
    pub fn set_lease(&self, stage: Stage, image: ImageId, lease: LeaseView) {
        lock(&self.leases).insert((stage, image), lease);
    }

    /// A lease as stored.
    pub fn lease_of(&self, stage: Stage, image: ImageId) -> Option<LeaseView> {
        lock(&self.leases).get(&(stage, image)).cloned()
    }
}

impl ControlStore for MemoryControl {
    async fn load_breaker(&self, stage: Stage) -> Result<(Breaker, u64), RepoError> {
        Ok(lock(&self.breakers)
            .get(&stage)
            .cloned()
            .unwrap_or_default())
    }

    async fn save_breaker(
        &self,
        stage: Stage,
        breaker: &Breaker,
        expected_version: u64,
    ) -> Result<(), RepoError> {
        let mut all = lock(&self.breakers);
        let current = all.get(&stage).map_or(0, |(_, v)| *v);
        if current != expected_version {
            return Err(RepoError::Conflict);
        }
        all.insert(stage, (breaker.clone(), expected_version + 1));
        Ok(())
    }

    async fn acquire_lease(
        &self,
        stage: Stage,
        image: ImageId,
        holder: &Holder<'_>,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Lease, RepoError> {
        let mut leases = lock(&self.leases);
        let old = leases.get(&(stage, image)).cloned();
        let lease = match &old {
            None => Lease::Taken,
            Some(l) if l.until >= now && l.holder == holder.message_id => {
                return Ok(Lease::Running { until: l.until })
            }
            Some(l) if l.until >= now => return Ok(Lease::HeldElsewhere),
            Some(l) if l.holder == holder.message_id => Lease::Abandoned {
                attempts: l.attempts,
                ran_out_of_time: l.ran_out_of_time,
            },
            Some(_) => Lease::Taken,
        };
        let attempts = old.map_or(0, |l| l.attempts) + 1;
        leases.insert(
            (stage, image),
            LeaseView {
                holder: holder.message_id.to_owned(),
                receive: holder.receive,
                until,
                attempts,
                ran_out_of_time: false,
            },
        );
        Ok(lease)
    }

    async fn mark_out_of_time(
        &self,
        stage: Stage,
        image: ImageId,
        holder: &Holder<'_>,
    ) -> Result<(), RepoError> {
        if let Some(l) = lock(&self.leases).get_mut(&(stage, image)) {
            if l.is_held_by(holder) {
                l.ran_out_of_time = true;
            }
        }
        Ok(())
    }

    async fn lease(&self, stage: Stage, image: ImageId) -> Result<Option<LeaseView>, RepoError> {
        Ok(self.lease_of(stage, image))
    }

    async fn release_lease(
        &self,
        stage: Stage,
        image: ImageId,
        holder: &Holder<'_>,
    ) -> Result<(), RepoError> {
        let mut leases = lock(&self.leases);
        if leases
            .get(&(stage, image))
            .is_some_and(|l| l.is_held_by(holder))
        {
            leases.remove(&(stage, image));
        }
        Ok(())
    }
}

// ----------------------------------------------------------------------------- operations

use crate::domain::Status;
use crate::ports::{
    DeadLetter, MinuteCount, Outcome, QueueAdmin, QueueDepth, StatusIndex, ThroughputLog,
};

/// As `by_status_v2` holds them: the rows of shard `n` of `status` with a `status_key`, in the
/// index's order (`status_since`, `image_id`).
impl MemoryImages {
    fn shard_rows(&self, status: Status, n: usize, oldest_first: bool) -> Vec<ImageRecord> {
        if !crate::status_index::indexed(status) {
            return Vec::new();
        }
        let unindexed = lock(&self.unindexed);
        let mut rows: Vec<ImageRecord> = lock(&self.rows)
            .values()
            .filter(|r| {
                r.processing_status == status
                    && crate::status_index::shard(r.image_id) == n
                    && !unindexed.contains(&r.image_id)
            })
            .cloned()
            .collect();
        rows.sort_by_key(crate::status_index::Entry::of);
        if !oldest_first {
            rows.reverse();
        }
        rows
    }
}

impl StatusIndex for MemoryImages {
    async fn count_by_status(&self, status: Status) -> Result<u64, RepoError> {
        Ok((0..crate::status_index::SHARDS)
            .map(|n| self.shard_rows(status, n, true).len() as u64)
            .sum())
    }

    async fn page_by_status(
        &self,
        status: Status,
        oldest_first: bool,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<ImageRecord>, RepoError> {
        use crate::status_index::{after, merge, rows_in_order, Cursor, Entry, ShardRead};
        if !crate::status_index::indexed(status) {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        let cursor = cursor.map(Cursor::decode).transpose()?.unwrap_or_default();
        let limit_rows = limit.max(1) as usize;
        // Each open shard read from its own position, `limit` entries at most: a Query per
        // shard, of the keys only.
        let reads = cursor
            .open_shards()
            .map(|(n, position)| {
                let mut entries: Vec<Entry> = self
                    .shard_rows(status, n, oldest_first)
                    .iter()
                    .map(Entry::of)
                    .filter(|e| after(e, position, oldest_first))
                    .collect();
                let more = entries.len() > limit_rows;
                entries.truncate(limit_rows);
                (
                    n,
                    ShardRead {
                        items: entries,
                        more,
                    },
                )
            })
            .collect();
        let page = merge(&cursor, reads, oldest_first, limit);
        // Then the rows themselves, by id (the adapter's BatchGetItem).
        let rows: Vec<ImageRecord> = {
            let all = lock(&self.rows);
            page.items
                .iter()
                .filter_map(|e| all.get(&e.id).cloned())
                .collect()
        };
        Ok(Page {
            items: rows_in_order(&page.items, rows, status),
            next: page.next,
        })
    }
}

/// A dead letter in memory: (message id, body, hidden until).
type Letter = (String, String, Option<tokio::time::Instant>);

/// The dead-letter queues in memory. Time is tokio's, so a paused test clock drives the hiding
/// and the long polls.
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    /// Per stage, oldest first.
    letters: Mutex<BTreeMap<Stage, Vec<Letter>>>,
    /// Depths the processing queues report (test setup).
    pub queue_depths: Mutex<BTreeMap<Stage, QueueDepth>>,
    /// When set, a receive that does not wait (an SQS short poll, which samples some of the
    /// queue's servers) answers empty even when letters are visible, as SQS may.
    pub short_polls_miss: Mutex<bool>,
    /// Receives so far: (stage, wait asked for).
    pub receives: Mutex<Vec<(Stage, Duration)>>,
}

impl MemoryDeadLetters {
    /// Puts a message into a stage's DLQ (as SQS would after the last receive).
    pub fn push(&self, stage: Stage, body: &str) {
        let id = format!("dlq-{}", ulid::Ulid::new());
        lock(&self.letters)
            .entry(stage)
            .or_default()
            .push((id, body.to_owned(), None));
    }

    /// The bodies in a stage's DLQ, hidden or not.
    pub fn bodies(&self, stage: Stage) -> Vec<String> {
        lock(&self.letters)
            .get(&stage)
            .map(|v| v.iter().map(|(_, b, _)| b.clone()).collect())
            .unwrap_or_default()
    }

    /// How many of a stage's letters are hidden now (received and not yet visible again).
    pub fn hidden(&self, stage: Stage) -> usize {
        let now = tokio::time::Instant::now();
        lock(&self.letters).get(&stage).map_or(0, |v| {
            v.iter().filter(|l| l.2.is_some_and(|u| u > now)).count()
        })
    }

    /// Hides every letter of a stage for `for_` (another reader holding them, test setup).
    pub fn hide_all(&self, stage: Stage, for_: Duration) {
        let until = tokio::time::Instant::now() + for_;
        for letter in lock(&self.letters).entry(stage).or_default().iter_mut() {
            letter.2 = Some(until);
        }
    }

    /// Takes up to `max` visible letters, hiding them until `until`; or, when none is visible,
    /// when the next hidden one becomes visible again.
    fn take(
        &self,
        stage: Stage,
        max: u32,
        until: tokio::time::Instant,
    ) -> (Vec<DeadLetter>, Option<tokio::time::Instant>) {
        let now = tokio::time::Instant::now();
        let mut all = lock(&self.letters);
        let mut out = Vec::new();
        let mut next_visible: Option<tokio::time::Instant> = None;
        for (id, body, hidden) in all.entry(stage).or_default().iter_mut() {
            if let Some(u) = hidden.filter(|u| *u > now) {
                next_visible = Some(next_visible.map_or(u, |n| n.min(u)));
                continue;
            }
            if out.len() >= max as usize {
                break;
            }
            *hidden = Some(until);
            out.push(DeadLetter {
                message_id: id.clone(),
                receipt_handle: id.clone(),
                body: body.clone(),
            });
        }
        (out, next_visible)
    }
}

impl QueueAdmin for MemoryDeadLetters {
    async fn depth(&self, stage: Stage, dead_letters: bool) -> Result<QueueDepth, QueueError> {
        if !dead_letters {
            return Ok(lock(&self.queue_depths)
                .get(&stage)
                .copied()
                .unwrap_or_default());
        }
        let all = lock(&self.letters).get(&stage).map_or(0, Vec::len) as u64;
        let hidden = self.hidden(stage) as u64;
        Ok(QueueDepth {
            visible: all - hidden,
            in_flight: hidden,
            delayed: 0,
        })
    }

    async fn receive_dead_letters(
        &self,
        stage: Stage,
        max: u32,
        hide_for: Duration,
        wait: Duration,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        lock(&self.receives).push((stage, wait));
        // SQS counts the wait in whole seconds, at most 20.
        let wait = Duration::from_secs(wait.as_secs().min(20));
        if wait.is_zero() && *lock(&self.short_polls_miss) {
            return Ok(Vec::new());
        }
        let give_up = tokio::time::Instant::now() + wait;
        loop {
            let now = tokio::time::Instant::now();
            let (out, next_visible) = self.take(stage, max, now + hide_for);
            if !out.is_empty() || now >= give_up {
                return Ok(out);
            }
            // Until a hidden letter comes back, or a little later (a letter pushed meanwhile).
            let tick = now + Duration::from_millis(100);
            let wake = next_visible.map_or(tick, |v| v.min(tick)).min(give_up);
            tokio::time::sleep_until(wake).await;
        }
    }

    async fn delete_dead_letter(
        &self,
        stage: Stage,
        receipt_handle: &str,
    ) -> Result<(), QueueError> {
        lock(&self.letters)
            .entry(stage)
            .or_default()
            .retain(|(id, _, _)| id != receipt_handle);
        Ok(())
    }

    async fn release_dead_letter(
        &self,
        stage: Stage,
        receipt_handle: &str,
        after: Duration,
    ) -> Result<(), QueueError> {
        let at = tokio::time::Instant::now() + after;
        for (id, _, until) in lock(&self.letters).entry(stage).or_default().iter_mut() {
            if id == receipt_handle {
                *until = Some(at);
            }
        }
        Ok(())
    }
}

/// Per-minute throughput counters in memory.
#[derive(Debug, Default)]
pub struct MemoryThroughput {
    minutes: Mutex<BTreeMap<Timestamp, (u64, u64)>>,
    /// The completed total's seed (`completed#seed`).
    pub completed_seed: Mutex<u64>,
}

impl ThroughputLog for MemoryThroughput {
    async fn count(&self, at: Timestamp, outcome: Outcome) -> Result<(), RepoError> {
        let mut all = lock(&self.minutes);
        let entry = all.entry(crate::ops::minute_start(at)).or_default();
        match outcome {
            Outcome::Processed => entry.0 += 1,
            Outcome::Failed => entry.1 += 1,
        }
        Ok(())
    }

    async fn recent(&self, now: Timestamp, minutes: u32) -> Result<Vec<MinuteCount>, RepoError> {
        let last = crate::ops::minute_start(now).unix_millis();
        let all = lock(&self.minutes);
        Ok((0..i64::from(minutes))
            .rev()
            .map(|i| {
                let minute = Timestamp::from_unix_millis(last - i * 60_000);
                let (processed, failed) = all.get(&minute).copied().unwrap_or_default();
                MinuteCount {
                    minute,
                    processed,
                    failed,
                }
            })
            .collect())
    }

    async fn completed_total(&self) -> Result<u64, RepoError> {
        // As the table's: the processed counts (all minutes: nothing expires here) plus the seed.
        let counted: u64 = lock(&self.minutes).values().map(|(p, _)| p).sum();
        Ok(counted + *lock(&self.completed_seed))
    }
}

pub use crate::engine::samples::png_rgba16_one_colour;

impl MemoryImages {
    /// Puts a legacy row (one an older system wrote, without the status fields) directly.
    pub fn insert_legacy(&self, id: ImageId, row: crate::domain::LegacyRow) {
        lock(&self.legacy).insert(id, row);
    }

    /// Legacy rows still there.
    pub fn legacy_ids(&self) -> Vec<ImageId> {
        lock(&self.legacy).keys().copied().collect()
    }
}

impl crate::ports::BackfillRows for MemoryImages {
    async fn read_row(&self, id: ImageId) -> Result<Option<crate::ports::StoredRow>, RepoError> {
        if let Some(r) = lock(&self.rows).get(&id) {
            return Ok(Some(crate::ports::StoredRow::Current(Box::new(r.clone()))));
        }
        Ok(lock(&self.legacy)
            .get(&id)
            .cloned()
            .map(crate::ports::StoredRow::Legacy))
    }

    async fn replace_legacy(&self, record: &ImageRecord) -> Result<(), RepoError> {
        if lock(&self.legacy).remove(&record.image_id).is_none() {
            return Err(RepoError::Conflict);
        }
        lock(&self.unindexed).remove(&record.image_id);
        lock(&self.rows).insert(record.image_id, record.clone());
        Ok(())
    }

    async fn page_unindexed(
        &self,
        status: Status,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<ImageRecord>, RepoError> {
        let after: Option<ImageId> = cursor
            .map(|c| c.parse().map_err(|_| RepoError::BadCursor))
            .transpose()?;
        let unindexed = lock(&self.unindexed);
        let rows: Vec<ImageRecord> = lock(&self.rows)
            .values()
            .filter(|r| r.processing_status == status && unindexed.contains(&r.image_id))
            .filter(|r| after.is_none_or(|a| r.image_id > a))
            .take(limit.max(1) as usize + 1)
            .cloned()
            .collect();
        let more = rows.len() > limit.max(1) as usize;
        let items: Vec<ImageRecord> = rows.into_iter().take(limit.max(1) as usize).collect();
        let next = more
            .then(|| items.last().map(|r| r.image_id.to_string()))
            .flatten();
        Ok(Page { items, next })
    }

    async fn count_completed(&self) -> Result<u64, RepoError> {
        Ok(lock(&self.rows)
            .values()
            .filter(|r| r.processing_status == Status::Completed)
            .count() as u64)
    }

    async fn index_row(&self, record: &ImageRecord) -> Result<bool, RepoError> {
        let rows = lock(&self.rows);
        let mut unindexed = lock(&self.unindexed);
        match rows.get(&record.image_id) {
            Some(current)
                if current.version == record.version && unindexed.contains(&record.image_id) =>
            {
                unindexed.remove(&record.image_id);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl crate::ports::OriginalsSource for MemoryStore {
    async fn list_originals(
        &self,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<Page<crate::ports::ListedOriginal>, StoreError> {
        let all = lock(&self.objects);
        let mut keys = all
            .iter()
            .filter(|(k, _)| k.starts_with(crate::domain::ids::ORIGINALS_PREFIX))
            .filter(|(k, _)| start_after.is_none_or(|a| k.as_str() > a))
            .filter_map(|(k, v)| v.last().map(|v| (k, v)));
        let items: Vec<crate::ports::ListedOriginal> = keys
            .by_ref()
            .take(limit as usize)
            .map(|(k, v)| crate::ports::ListedOriginal {
                key: k.clone(),
                size: v.bytes.len() as u64,
            })
            .collect();
        let next = keys
            .next()
            .and_then(|_| items.last().map(|i| i.key.clone()));
        Ok(Page { items, next })
    }

    async fn head_bytes(&self, key: &ObjectKey, n: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .object(key.as_str())
            .map(|(b, _)| b.into_iter().take(n as usize).collect()))
    }
}

/// Migration markers in memory.
#[derive(Debug, Default)]
pub struct MemoryMarkers {
    markers: Mutex<BTreeMap<String, (crate::domain::Marker, u64)>>,
    /// The completed total's seed, once set.
    pub completed_seed: Mutex<Option<i64>>,
    /// The completed total's counted part as this store sees it (test setup).
    pub counted: Mutex<u64>,
}

impl MemoryMarkers {
    /// A marker as stored.
    pub fn marker(&self, name: &str) -> Option<crate::domain::Marker> {
        lock(&self.markers).get(name).map(|(m, _)| m.clone())
    }

    /// Replaces a marker (test setup).
    pub fn set(&self, name: &str, marker: crate::domain::Marker) {
        let mut all = lock(&self.markers);
        let v = all.get(name).map_or(0, |(_, v)| *v) + 1;
        all.insert(name.to_owned(), (marker, v));
    }
}

impl crate::ports::MarkerStore for MemoryMarkers {
    async fn load_marker(
        &self,
        name: &str,
    ) -> Result<Option<(crate::domain::Marker, u64)>, RepoError> {
        Ok(lock(&self.markers).get(name).cloned())
    }

    async fn save_marker(
        &self,
        name: &str,
        marker: &crate::domain::Marker,
        expected_version: u64,
    ) -> Result<(), RepoError> {
        let mut all = lock(&self.markers);
        let current = all.get(name).map_or(0, |(_, v)| *v);
        if current != expected_version {
            return Err(RepoError::Conflict);
        }
        all.insert(name.to_owned(), (marker.clone(), expected_version + 1));
        Ok(())
    }

    async fn completed_counted(&self) -> Result<Option<u64>, RepoError> {
        Ok(lock(&self.completed_seed)
            .is_none()
            .then(|| *lock(&self.counted)))
    }

    async fn seed_completed(&self, seed: i64) -> Result<bool, RepoError> {
        let mut current = lock(&self.completed_seed);
        if current.is_some() {
            return Ok(false);
        }
        *current = Some(seed);
        Ok(true)
    }
}

// ----------------------------------------------------------------------------- fairness

/// The per-owner request counters in memory, with the adapter's conditional `ADD`.
#[derive(Debug, Default)]
pub struct MemoryRates {
    counts: Mutex<BTreeMap<(OwnerId, Timestamp), u32>>,
}

impl MemoryRates {
    /// The requests counted for `owner` in the window starting at `window_start`.
    pub fn count(&self, owner: &OwnerId, window_start: Timestamp) -> u32 {
        lock(&self.counts)
            .get(&(owner.clone(), window_start))
            .copied()
            .unwrap_or(0)
    }
}

impl crate::ports::RateCounter for MemoryRates {
    async fn take(
        &self,
        owner: &OwnerId,
        window_start: Timestamp,
        _window: Duration,
        limit: u32,
    ) -> Result<bool, RepoError> {
        let mut counts = lock(&self.counts);
        let count = counts.entry((owner.clone(), window_start)).or_insert(0);
        if *count >= limit {
            return Ok(false);
        }
        *count += 1;
        Ok(true)
    }
}

/// Rows awaiting their bytes, from the rows in memory (what the `by_owner` query reads).
impl crate::ports::AwaitingUploads for MemoryImages {
    async fn awaiting_since(
        &self,
        owner: &OwnerId,
        after: Timestamp,
    ) -> Result<Vec<Timestamp>, RepoError> {
        let mut out: Vec<Timestamp> = lock(&self.rows)
            .values()
            .filter(|r| &r.owner_id == owner && r.created_at > after)
            .filter(|r| r.upload_state == crate::domain::UploadState::AwaitingUpload)
            .map(|r| r.created_at)
            .collect();
        out.sort();
        Ok(out)
    }
}
