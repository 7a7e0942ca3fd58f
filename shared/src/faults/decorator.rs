//! [`Faulty`]: every port trait, implemented for a port behind an [`Injector`].

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{Call, InjectedFault, Injector, Port};
use crate::breaker::Breaker;
use crate::domain::{
    ImageId, ImageRecord, LinkWindow, Notice, ObjectKey, OwnerId, RetryMessage, Stage, Status,
    Timestamp,
};
use crate::ops::backfill::Marker;
use crate::ports::{
    BackfillRows, Connection, ConnectionPoster, ConnectionRepository, ControlStore, DeadLetter,
    Delivery, DigestIndex, Downloads, Holder, ImageRepository, JobQueue, Lease, LeaseView,
    ListedOriginal, MarkerStore, MinuteCount, NoticeLog, ObjectMeta, ObjectStore, OriginalsSource,
    Outcome, Page, PostOutcome, PresignedPost, PresignedRequest, QueueAdmin, QueueDepth,
    QueueError, RealtimeError, RepoError, StatusIndex, StoreError, StoredObject, StoredRow,
    ThroughputLog, UploadConstraints,
};

/// A port (`inner`) whose calls first go through `injector`. Presigning is local computation
/// (no call leaves the process), so it is never faulted.
#[derive(Debug)]
pub struct Faulty<T, I> {
    inner: Arc<T>,
    injector: I,
}

impl<T, I: Clone> Clone for Faulty<T, I> {
    fn clone(&self) -> Self {
        Faulty {
            inner: Arc::clone(&self.inner),
            injector: self.injector.clone(),
        }
    }
}

impl<T: Default, I: Default> Default for Faulty<T, I> {
    fn default() -> Self {
        Self::new(T::default(), I::default())
    }
}

impl<T, I> Faulty<T, I> {
    /// `inner` behind `injector`.
    pub fn new(inner: T, injector: I) -> Self {
        Self::shared(Arc::new(inner), injector)
    }

    /// A port shared with other holders (the simulation's world keeps its fakes) behind
    /// `injector`.
    pub fn shared(inner: Arc<T>, injector: I) -> Self {
        Faulty { inner, injector }
    }

    /// The decorated port.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The injector.
    pub fn injector(&self) -> &I {
        &self.injector
    }
}

impl<T, I: Injector> Faulty<T, I> {
    /// Not an `async fn`: one state machine less in every decorated call (the processor's
    /// futures are deep enough already).
    fn enter<'a>(
        &'a self,
        port: Port,
        method: &'static str,
        key: Option<&'a str>,
    ) -> impl Future<Output = Result<(), InjectedFault>> + Send + 'a {
        self.injector.enter(Call { port, method, key })
    }
}

fn store(e: InjectedFault) -> StoreError {
    if e.refused {
        StoreError::Refused(Box::new(e))
    } else {
        StoreError::Unavailable(Box::new(e))
    }
}

fn repo(e: InjectedFault) -> RepoError {
    if e.refused {
        RepoError::Refused(Box::new(e))
    } else {
        RepoError::Unavailable(Box::new(e))
    }
}

/// SQS reports no refusal kind: a refusal is unavailable, as the adapter reports one.
fn queue(e: InjectedFault) -> QueueError {
    QueueError::Unavailable(Box::new(e))
}

/// The realtime ports report no refusal kind either.
fn realtime(e: InjectedFault) -> RealtimeError {
    RealtimeError::Unavailable(Box::new(e))
}

impl<T: ObjectStore, I: Injector> ObjectStore for Faulty<T, I> {
    async fn put(
        &self,
        key: &ObjectKey,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        let port = Port::ObjectStore;
        self.enter(port, "put", Some(key.as_str()))
            .await
            .map_err(store)?;
        self.inner.put(key, body, content_type).await
    }

    async fn get(
        &self,
        key: &ObjectKey,
        version: Option<&str>,
    ) -> Result<StoredObject, StoreError> {
        let port = Port::ObjectStore;
        self.enter(port, "get", Some(key.as_str()))
            .await
            .map_err(store)?;
        self.inner.get(key, version).await
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, StoreError> {
        let port = Port::ObjectStore;
        self.enter(port, "head", Some(key.as_str()))
            .await
            .map_err(store)?;
        self.inner.head(key).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let port = Port::ObjectStore;
        self.enter(port, "delete", Some(key.as_str()))
            .await
            .map_err(store)?;
        self.inner.delete(key).await
    }

    async fn delete_version(&self, key: &ObjectKey, version: &str) -> Result<(), StoreError> {
        let port = Port::ObjectStore;
        self.enter(port, "delete_version", Some(key.as_str()))
            .await
            .map_err(store)?;
        self.inner.delete_version(key, version).await
    }

    async fn presign_put(
        &self,
        key: &ObjectKey,
        constraints: &UploadConstraints,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        self.inner.presign_put(key, constraints, expires_in).await
    }

    async fn presign_post(
        &self,
        key: &ObjectKey,
        constraints: &UploadConstraints,
        expires_in: Duration,
    ) -> Result<PresignedPost, StoreError> {
        self.inner.presign_post(key, constraints, expires_in).await
    }
}

/// Links are presigned locally: never faulted.
impl<T: Downloads, I: Injector> Downloads for Faulty<T, I> {
    async fn link(
        &self,
        key: &ObjectKey,
        version: Option<&str>,
        window: LinkWindow,
    ) -> Result<String, StoreError> {
        self.inner.link(key, version, window).await
    }
}

impl<T: OriginalsSource, I: Injector> OriginalsSource for Faulty<T, I> {
    async fn list_originals(
        &self,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<Page<ListedOriginal>, StoreError> {
        let port = Port::OriginalsSource;
        self.enter(port, "list_originals", None)
            .await
            .map_err(store)?;
        self.inner.list_originals(start_after, limit).await
    }

    async fn head_bytes(&self, key: &ObjectKey, n: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let port = Port::OriginalsSource;
        self.enter(port, "head_bytes", Some(key.as_str()))
            .await
            .map_err(store)?;
        self.inner.head_bytes(key, n).await
    }
}

impl<T: ImageRepository, I: Injector> ImageRepository for Faulty<T, I> {
    async fn create(&self, record: &ImageRecord) -> Result<(), RepoError> {
        let port = Port::ImageRepository;
        self.enter(port, "create", None).await.map_err(repo)?;
        self.inner.create(record).await
    }

    async fn get(&self, id: ImageId) -> Result<Option<ImageRecord>, RepoError> {
        let port = Port::ImageRepository;
        self.enter(port, "get", None).await.map_err(repo)?;
        self.inner.get(id).await
    }

    async fn list_by_owner(
        &self,
        owner: &OwnerId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<ImageRecord>, RepoError> {
        let port = Port::ImageRepository;
        self.enter(port, "list_by_owner", None)
            .await
            .map_err(repo)?;
        self.inner.list_by_owner(owner, limit, cursor).await
    }

    async fn update(&self, record: &mut ImageRecord) -> Result<(), RepoError> {
        let port = Port::ImageRepository;
        self.enter(port, "update", None).await.map_err(repo)?;
        self.inner.update(record).await
    }

    async fn delete(&self, id: ImageId) -> Result<(), RepoError> {
        let port = Port::ImageRepository;
        self.enter(port, "delete", None).await.map_err(repo)?;
        self.inner.delete(id).await
    }
}

impl<T: StatusIndex, I: Injector> StatusIndex for Faulty<T, I> {
    async fn count_by_status(&self, status: Status) -> Result<u64, RepoError> {
        let port = Port::StatusIndex;
        self.enter(port, "count_by_status", None)
            .await
            .map_err(repo)?;
        self.inner.count_by_status(status).await
    }

    async fn page_by_status(
        &self,
        status: Status,
        oldest_first: bool,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<ImageRecord>, RepoError> {
        let port = Port::StatusIndex;
        self.enter(port, "page_by_status", None)
            .await
            .map_err(repo)?;
        self.inner
            .page_by_status(status, oldest_first, limit, cursor)
            .await
    }
}

impl<T: BackfillRows, I: Injector> BackfillRows for Faulty<T, I> {
    async fn read_row(&self, id: ImageId) -> Result<Option<StoredRow>, RepoError> {
        let port = Port::BackfillRows;
        self.enter(port, "read_row", None).await.map_err(repo)?;
        self.inner.read_row(id).await
    }

    async fn replace_legacy(&self, record: &ImageRecord) -> Result<(), RepoError> {
        let port = Port::BackfillRows;
        self.enter(port, "replace_legacy", None)
            .await
            .map_err(repo)?;
        self.inner.replace_legacy(record).await
    }
}

impl<T: JobQueue, I: Injector> JobQueue for Faulty<T, I> {
    async fn enqueue(&self, message: &RetryMessage) -> Result<(), QueueError> {
        let port = Port::JobQueue;
        self.enter(port, "enqueue", None).await.map_err(queue)?;
        self.inner.enqueue(message).await
    }

    async fn delay(
        &self,
        stage: Stage,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let port = Port::JobQueue;
        self.enter(port, "delay", None).await.map_err(queue)?;
        self.inner.delay(stage, receipt_handle, delay).await
    }

    async fn requeue(
        &self,
        stage: Stage,
        body: &str,
        delay: Duration,
        deferred_since: Option<Timestamp>,
    ) -> Result<(), QueueError> {
        let port = Port::JobQueue;
        self.enter(port, "requeue", None).await.map_err(queue)?;
        self.inner.requeue(stage, body, delay, deferred_since).await
    }
}

impl<T: QueueAdmin, I: Injector> QueueAdmin for Faulty<T, I> {
    async fn depth(&self, stage: Stage, dead_letters: bool) -> Result<QueueDepth, QueueError> {
        let port = Port::QueueAdmin;
        self.enter(port, "depth", None).await.map_err(queue)?;
        self.inner.depth(stage, dead_letters).await
    }

    async fn receive_dead_letters(
        &self,
        stage: Stage,
        max: u32,
        hide_for: Duration,
        wait: Duration,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        let port = Port::QueueAdmin;
        self.enter(port, "receive_dead_letters", None)
            .await
            .map_err(queue)?;
        self.inner
            .receive_dead_letters(stage, max, hide_for, wait)
            .await
    }

    async fn delete_dead_letter(
        &self,
        stage: Stage,
        receipt_handle: &str,
    ) -> Result<(), QueueError> {
        let port = Port::QueueAdmin;
        self.enter(port, "delete_dead_letter", None)
            .await
            .map_err(queue)?;
        self.inner.delete_dead_letter(stage, receipt_handle).await
    }

    async fn release_dead_letter(
        &self,
        stage: Stage,
        receipt_handle: &str,
        after: Duration,
    ) -> Result<(), QueueError> {
        let port = Port::QueueAdmin;
        self.enter(port, "release_dead_letter", None)
            .await
            .map_err(queue)?;
        self.inner
            .release_dead_letter(stage, receipt_handle, after)
            .await
    }
}

impl<T: ControlStore, I: Injector> ControlStore for Faulty<T, I> {
    async fn load_breaker(&self, stage: Stage) -> Result<(Breaker, u64), RepoError> {
        let port = Port::ControlStore;
        self.enter(port, "load_breaker", None).await.map_err(repo)?;
        self.inner.load_breaker(stage).await
    }

    async fn save_breaker(
        &self,
        stage: Stage,
        breaker: &Breaker,
        expected_version: u64,
    ) -> Result<(), RepoError> {
        let port = Port::ControlStore;
        self.enter(port, "save_breaker", None).await.map_err(repo)?;
        self.inner
            .save_breaker(stage, breaker, expected_version)
            .await
    }

    async fn acquire_lease(
        &self,
        stage: Stage,
        image: ImageId,
        holder: &Holder<'_>,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Lease, RepoError> {
        let port = Port::ControlStore;
        self.enter(port, "acquire_lease", None)
            .await
            .map_err(repo)?;
        self.inner
            .acquire_lease(stage, image, holder, until, now)
            .await
    }

    async fn mark_out_of_time(
        &self,
        stage: Stage,
        image: ImageId,
        holder: &Holder<'_>,
    ) -> Result<(), RepoError> {
        let port = Port::ControlStore;
        self.enter(port, "mark_out_of_time", None)
            .await
            .map_err(repo)?;
        self.inner.mark_out_of_time(stage, image, holder).await
    }

    async fn lease(&self, stage: Stage, image: ImageId) -> Result<Option<LeaseView>, RepoError> {
        let port = Port::ControlStore;
        self.enter(port, "lease", None).await.map_err(repo)?;
        self.inner.lease(stage, image).await
    }

    async fn release_lease(
        &self,
        stage: Stage,
        image: ImageId,
        holder: &Holder<'_>,
    ) -> Result<(), RepoError> {
        let port = Port::ControlStore;
        self.enter(port, "release_lease", None)
            .await
            .map_err(repo)?;
        self.inner.release_lease(stage, image, holder).await
    }
}

impl<T: ThroughputLog, I: Injector> ThroughputLog for Faulty<T, I> {
    async fn count(&self, at: Timestamp, outcome: Outcome) -> Result<(), RepoError> {
        let port = Port::ThroughputLog;
        self.enter(port, "count", None).await.map_err(repo)?;
        self.inner.count(at, outcome).await
    }

    async fn recent(&self, now: Timestamp, minutes: u32) -> Result<Vec<MinuteCount>, RepoError> {
        let port = Port::ThroughputLog;
        self.enter(port, "recent", None).await.map_err(repo)?;
        self.inner.recent(now, minutes).await
    }
}

impl<T: MarkerStore, I: Injector> MarkerStore for Faulty<T, I> {
    async fn load_marker(&self, name: &str) -> Result<Option<(Marker, u64)>, RepoError> {
        let port = Port::MarkerStore;
        self.enter(port, "load_marker", None).await.map_err(repo)?;
        self.inner.load_marker(name).await
    }

    async fn save_marker(
        &self,
        name: &str,
        marker: &Marker,
        expected_version: u64,
    ) -> Result<(), RepoError> {
        let port = Port::MarkerStore;
        self.enter(port, "save_marker", None).await.map_err(repo)?;
        self.inner.save_marker(name, marker, expected_version).await
    }
}

impl<T: ConnectionRepository, I: Injector> ConnectionRepository for Faulty<T, I> {
    async fn put(&self, connection: &Connection) -> Result<(), RealtimeError> {
        let port = Port::ConnectionRepository;
        self.enter(port, "put", None).await.map_err(realtime)?;
        self.inner.put(connection).await
    }

    async fn get(
        &self,
        connection_id: &str,
        now: Timestamp,
    ) -> Result<Option<Connection>, RealtimeError> {
        let port = Port::ConnectionRepository;
        self.enter(port, "get", None).await.map_err(realtime)?;
        self.inner.get(connection_id, now).await
    }

    async fn delete(&self, connection_id: &str) -> Result<(), RealtimeError> {
        let port = Port::ConnectionRepository;
        self.enter(port, "delete", None).await.map_err(realtime)?;
        self.inner.delete(connection_id).await
    }

    async fn for_owner(
        &self,
        owner: &OwnerId,
        now: Timestamp,
    ) -> Result<Vec<Connection>, RealtimeError> {
        let port = Port::ConnectionRepository;
        self.enter(port, "for_owner", None)
            .await
            .map_err(realtime)?;
        self.inner.for_owner(owner, now).await
    }
}

impl<T: NoticeLog, I: Injector> NoticeLog for Faulty<T, I> {
    async fn next_seq(&self, owner: &OwnerId) -> Result<u64, RealtimeError> {
        let port = Port::NoticeLog;
        self.enter(port, "next_seq", None).await.map_err(realtime)?;
        self.inner.next_seq(owner).await
    }

    async fn delivery(&self, key: &str) -> Result<Option<Delivery>, RealtimeError> {
        let port = Port::NoticeLog;
        self.enter(port, "delivery", None).await.map_err(realtime)?;
        self.inner.delivery(key).await
    }

    async fn claim(&self, key: &str, delivery: &Delivery) -> Result<Delivery, RealtimeError> {
        let port = Port::NoticeLog;
        self.enter(port, "claim", None).await.map_err(realtime)?;
        self.inner.claim(key, delivery).await
    }

    async fn record_progress(
        &self,
        key: &str,
        delivered: &BTreeSet<String>,
        done: bool,
    ) -> Result<(), RealtimeError> {
        let port = Port::NoticeLog;
        self.enter(port, "record_progress", None)
            .await
            .map_err(realtime)?;
        self.inner.record_progress(key, delivered, done).await
    }

    async fn append(
        &self,
        owner: &OwnerId,
        notice: &Notice,
        expires_at: Timestamp,
    ) -> Result<(), RealtimeError> {
        let port = Port::NoticeLog;
        self.enter(port, "append", None).await.map_err(realtime)?;
        self.inner.append(owner, notice, expires_at).await
    }

    async fn since(
        &self,
        owner: &OwnerId,
        after: u64,
        now: Timestamp,
    ) -> Result<Vec<Notice>, RealtimeError> {
        let port = Port::NoticeLog;
        self.enter(port, "since", None).await.map_err(realtime)?;
        self.inner.since(owner, after, now).await
    }
}

impl<T: ConnectionPoster, I: Injector> ConnectionPoster for Faulty<T, I> {
    async fn post(
        &self,
        connection_id: &str,
        payload: &[u8],
    ) -> Result<PostOutcome, RealtimeError> {
        let port = Port::ConnectionPoster;
        self.enter(port, "post", None).await.map_err(realtime)?;
        self.inner.post(connection_id, payload).await
    }
}

impl<T: DigestIndex, I: Injector> DigestIndex for Faulty<T, I> {
    /// A claim is a conditional write and, when the digest is held, a read of its holder: the
    /// read is entered after the port answered "held" (failing it there is what failing the
    /// real read does: the claim stays unmade, the caller sees an outage).
    async fn claim(
        &self,
        owner: &OwnerId,
        sha256: &str,
        image: ImageId,
    ) -> Result<Option<ImageId>, RepoError> {
        let port = Port::DigestIndex;
        self.enter(port, "claim", None).await.map_err(repo)?;
        let holder = self.inner.claim(owner, sha256, image).await?;
        if holder.is_some() {
            self.enter(port, "claim_read", None).await.map_err(repo)?;
        }
        Ok(holder)
    }

    async fn reclaim(
        &self,
        owner: &OwnerId,
        sha256: &str,
        from: ImageId,
        to: ImageId,
    ) -> Result<bool, RepoError> {
        let port = Port::DigestIndex;
        self.enter(port, "reclaim", None).await.map_err(repo)?;
        self.inner.reclaim(owner, sha256, from, to).await
    }
}

#[cfg(all(test, feature = "testing"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::{ContentType, NewImage, UploadState};
    use crate::faults::{Faults, Switch};
    use crate::testing::{MemoryDigests, MemoryImages, MemoryStore};

    fn spec(spec: &str) -> Faults {
        Faults::parse(Some(spec)).unwrap()
    }

    fn key(owner: &str) -> ObjectKey {
        ObjectKey::original(&owner.parse().unwrap(), ImageId::new())
    }

    fn row() -> ImageRecord {
        ImageRecord::new(
            NewImage {
                image_id: ImageId::new(),
                owner_id: "u1".parse().unwrap(),
                filename: None,
                content_type: ContentType::Jpeg,
                byte_size: 1,
                sha256: None,
                upload_state: UploadState::AwaitingUpload,
            },
            Timestamp::now(),
        )
    }

    #[tokio::test]
    async fn a_denied_entry_is_the_stores_refusal_and_a_plain_one_its_outage() {
        let store = Faulty::new(
            MemoryStore::default(),
            spec("s3_get@originals/t-x/:1:denied, s3_put:1"),
        );
        let denied = store.get(&key("t-x"), None).await.unwrap_err();
        assert!(matches!(denied, StoreError::Refused(_)), "{denied}");
        assert!(denied
            .to_string()
            .contains("injected access denied in s3_get"));
        let other = store.get(&key("t-y"), None).await.unwrap_err();
        assert!(
            matches!(other, StoreError::NotFound(_)),
            "reaches the store: {other}"
        );
        let put = store.put(&key("t-y"), vec![1], "image/jpeg").await;
        assert!(matches!(put, Err(StoreError::Unavailable(_))), "{put:?}");
        assert!(
            store.inner().keys().is_empty(),
            "a faulted put writes nothing"
        );
    }

    #[tokio::test]
    async fn a_spec_faults_the_calls_its_operation_names_and_no_others() {
        let images = Faulty::new(MemoryImages::default(), spec("ddb_update:1"));
        let mut r = row();
        images.create(&r).await.unwrap();
        assert!(images.get(r.image_id).await.unwrap().is_some());
        let e = images.update(&mut r).await.unwrap_err();
        assert!(matches!(e, RepoError::Unavailable(_)), "{e}");
        // `*` is every named operation; listing an owner's images is none of them.
        let all = Faulty::new(MemoryImages::default(), spec("*:1"));
        assert!(all.create(&row()).await.is_err());
        let owner: OwnerId = "u1".parse().unwrap();
        assert!(all.list_by_owner(&owner, 10, None).await.is_ok());
    }

    #[tokio::test]
    async fn deleting_an_object_is_faulted_like_deleting_a_version() {
        let store = Faulty::new(MemoryStore::default(), spec("s3_delete:1"));
        assert!(store.delete(&key("u")).await.is_err());
        assert!(store.delete_version(&key("u"), "v1").await.is_err());
    }

    #[tokio::test]
    async fn a_claim_fails_on_reading_its_holder_only_when_the_digest_is_held() {
        let digests = Faulty::new(MemoryDigests::default(), spec("ddb_get:1"));
        let owner: OwnerId = "u1".parse().unwrap();
        let (first, second) = (ImageId::new(), ImageId::new());
        assert_eq!(digests.claim(&owner, "ab", first).await.unwrap(), None);
        assert!(digests.claim(&owner, "ab", second).await.is_err());
        let clean = Faulty::new(MemoryDigests::default(), spec("ddb_put:0"));
        assert_eq!(clean.claim(&owner, "ab", first).await.unwrap(), None);
        assert_eq!(
            clean.claim(&owner, "ab", second).await.unwrap(),
            Some(first)
        );
    }

    #[tokio::test]
    async fn no_spec_passes_every_call_through() {
        let store = Faulty::new(MemoryStore::default(), Faults::default());
        store.put(&key("u"), vec![1], "image/png").await.unwrap();
        assert_eq!(store.inner().keys().len(), 1);
    }

    #[tokio::test]
    async fn a_switch_for_one_method_fails_only_that_method() {
        let store = Faulty::new(MemoryStore::default(), Switch::only("head"));
        store.injector().fail(true);
        let k = key("u");
        store.put(&k, vec![1], "image/png").await.unwrap();
        assert!(matches!(
            store.head(&k).await,
            Err(StoreError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn a_switch_fails_every_call_while_it_is_on() {
        let store: Faulty<MemoryStore, Switch> = Faulty::default();
        let k = key("u");
        store.injector().fail(true);
        assert!(matches!(
            store.put(&k, vec![1], "image/png").await,
            Err(StoreError::Unavailable(_))
        ));
        store.injector().refuse(true);
        assert!(matches!(store.head(&k).await, Err(StoreError::Refused(_))));
        store.injector().refuse(false);
        store.injector().fail(false);
        store.put(&k, vec![1], "image/png").await.unwrap();
        assert!(store.head(&k).await.unwrap().is_some());
    }
}
