//! [`Faulty`]: every port trait, implemented for a port behind an [`Injector`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{Call, InjectedFault, Injector, Port};
use crate::breaker::Breaker;
use crate::domain::Marker;
use crate::domain::{
    ImageId, ImageRecord, LinkWindow, ObjectKey, OwnerId, RetryMessage, Stage, Status, Timestamp,
};
use crate::ports::{
    AwaitingUploads, BackfillRows, BreakerWrite, Connection, ConnectionPoster,
    ConnectionRepository, ControlStore, DeadLetter, DeadLetterReceive, Delivery, DigestClaim,
    DigestIndex, Downloads, Holder, ImageRepository, JobQueue, Lease, LeaseKey, LeaseRequest,
    LeaseView, ListedOriginal, LogEntry, MarkerStore, MinuteCount, NoticeLog, ObjectMeta,
    ObjectRef, ObjectStore, OriginalsSource, Outcome, OwnerPage, Page, PageRequest, PostOutcome,
    PresignedPost, PresignedRequest, Progress, QueueAdmin, QueueDepth, QueueError, RateCounter,
    RealtimeError, Receipt, Replay, ReplayQuery, RepoError, Requeue, StatusIndex, StatusPage,
    StoreError, StoredObject, StoredRow, ThroughputLog, UploadConstraints, Written,
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

/// Implements a port trait for `Faulty`: each listed method enters the injector (with the object
/// key where it names one) and then calls the port; `pass` methods (local computation) only call
/// the port.
macro_rules! decorate {
    (
        $trait:ident: $port:ident, $error:ty, $conv:ident;
        $( fn $m:ident($($a:ident: $t:ty),*) -> $ok:ty $(, key $k:expr)?; )*
        $( pass fn $pm:ident($($pa:ident: $pt:ty),*) -> $pok:ty; )*
    ) => {
        impl<T: $trait, I: Injector> $trait for Faulty<T, I> {
            $(
                async fn $m(&self, $($a: $t),*) -> Result<$ok, $error> {
                    let key: Option<&str> = None $(.or(Some($k.as_str())))?;
                    self.enter(Port::$port, stringify!($m), key)
                        .await
                        .map_err($conv)?;
                    self.inner.$m($($a),*).await
                }
            )*
            $(
                async fn $pm(&self, $($pa: $pt),*) -> Result<$pok, $error> {
                    self.inner.$pm($($pa),*).await
                }
            )*
        }
    };
}

decorate! {
    ObjectStore: ObjectStore, StoreError, store;
    fn put(key: &ObjectKey, body: Vec<u8>, content_type: &str) -> (), key key;
    fn get(object: ObjectRef<'_>) -> StoredObject, key object.key;
    fn head(key: &ObjectKey) -> Option<ObjectMeta>, key key;
    fn delete(key: &ObjectKey) -> (), key key;
    fn delete_version(key: &ObjectKey, version: &str) -> (), key key;
    pass fn presign_put(key: &ObjectKey, c: &UploadConstraints, expires_in: Duration) -> PresignedRequest;
    pass fn presign_post(key: &ObjectKey, c: &UploadConstraints, expires_in: Duration) -> PresignedPost;
}

decorate! {
    Downloads: ObjectStore, StoreError, store;
    pass fn link(object: ObjectRef<'_>, window: LinkWindow) -> String;
}

decorate! {
    OriginalsSource: OriginalsSource, StoreError, store;
    fn list_originals(start_after: Option<&str>, limit: u32) -> Page<ListedOriginal>;
    fn head_bytes(key: &ObjectKey, n: u64) -> Option<Vec<u8>>, key key;
}

decorate! {
    ImageRepository: ImageRepository, RepoError, repo;
    fn create(record: &ImageRecord) -> ();
    fn get(id: ImageId) -> Option<ImageRecord>;
    fn list_by_owner(page: OwnerPage<'_>) -> Page<ImageRecord>;
    fn update(record: &mut ImageRecord) -> ();
    fn update_or_current(record: &mut ImageRecord) -> Written;
    fn delete(id: ImageId) -> ();
}

decorate! {
    RateCounter: RateCounter, RepoError, repo;
    fn take(owner: &OwnerId, window_start: Timestamp, window: Duration, limit: u32) -> bool;
}

decorate! {
    AwaitingUploads: AwaitingUploads, RepoError, repo;
    fn awaiting_since(owner: &OwnerId, after: Timestamp) -> Vec<Timestamp>;
}

decorate! {
    StatusIndex: StatusIndex, RepoError, repo;
    fn count_by_status(status: Status) -> u64;
    fn page_by_status(page: StatusPage<'_>) -> Page<ImageRecord>;
}

decorate! {
    BackfillRows: BackfillRows, RepoError, repo;
    fn read_row(id: ImageId) -> Option<StoredRow>;
    fn replace_legacy(record: &ImageRecord) -> ();
    fn page_unindexed(page: PageRequest<'_, Status>) -> Page<ImageRecord>;
    fn index_row(record: &ImageRecord) -> bool;
    fn count_completed() -> u64;
}

decorate! {
    JobQueue: JobQueue, QueueError, queue;
    fn enqueue(message: &RetryMessage) -> ();
    fn delay(receipt: Receipt<'_>, delay: Duration) -> ();
    fn requeue(copy: &Requeue<'_>) -> ();
}

decorate! {
    QueueAdmin: QueueAdmin, QueueError, queue;
    fn depth(stage: Stage, dead_letters: bool) -> QueueDepth;
    fn receive_dead_letters(request: &DeadLetterReceive) -> Vec<DeadLetter>;
    fn delete_dead_letter(receipt: Receipt<'_>) -> ();
    fn release_dead_letter(receipt: Receipt<'_>) -> ();
}

decorate! {
    ControlStore: ControlStore, RepoError, repo;
    fn load_breaker(stage: Stage) -> (Breaker, u64);
    fn save_breaker(write: BreakerWrite<'_>) -> ();
    fn acquire_lease(request: &LeaseRequest<'_>) -> Lease;
    fn mark_out_of_time(lease: LeaseKey, holder: &Holder<'_>) -> ();
    fn lease(lease: LeaseKey) -> Option<LeaseView>;
    fn release_lease(lease: LeaseKey, holder: &Holder<'_>) -> ();
}

decorate! {
    ThroughputLog: ThroughputLog, RepoError, repo;
    fn count(at: Timestamp, outcome: Outcome) -> ();
    fn recent(now: Timestamp, minutes: u32) -> Vec<MinuteCount>;
    fn completed_total() -> u64;
}

decorate! {
    MarkerStore: MarkerStore, RepoError, repo;
    fn load_marker(name: &str) -> Option<(Marker, u64)>;
    fn save_marker(name: &str, marker: &Marker, expected_version: u64) -> ();
    fn completed_counted() -> Option<u64>;
    fn seed_completed(seed: i64) -> bool;
}

decorate! {
    ConnectionRepository: ConnectionRepository, RealtimeError, realtime;
    fn put(connection: &Connection) -> ();
    fn get(id: &str, now: Timestamp) -> Option<Connection>;
    fn delete(connection_id: &str) -> ();
    fn for_owner(owner: &OwnerId, now: Timestamp) -> Vec<Connection>;
}

decorate! {
    NoticeLog: NoticeLog, RealtimeError, realtime;
    fn next_seq(owner: &OwnerId) -> u64;
    fn claim(key: &str, delivery: &Delivery) -> Delivery;
    fn record_progress(key: &str, progress: &Progress<'_>) -> ();
    fn append(entry: &LogEntry<'_>) -> ();
    fn since(query: &ReplayQuery<'_>) -> Replay;
}

decorate! {
    ConnectionPoster: ConnectionPoster, RealtimeError, realtime;
    fn post(connection_id: &str, payload: &[u8]) -> PostOutcome;
}

impl<T: DigestIndex, I: Injector> DigestIndex for Faulty<T, I> {
    /// A claim is a conditional write and, when the digest is held, a read of its holder: the
    /// read is entered after the port answered "held" (failing it there is what failing the
    /// real read does: the claim stays unmade, the caller sees an outage).
    async fn claim(&self, claim: &DigestClaim<'_>) -> Result<Option<ImageId>, RepoError> {
        let port = Port::DigestIndex;
        self.enter(port, "claim", None).await.map_err(repo)?;
        let holder = self.inner.claim(claim).await?;
        if holder.is_some() {
            self.enter(port, "claim_read", None).await.map_err(repo)?;
        }
        Ok(holder)
    }

    async fn reclaim(&self, claim: &DigestClaim<'_>, from: ImageId) -> Result<bool, RepoError> {
        self.enter(Port::DigestIndex, "reclaim", None)
            .await
            .map_err(repo)?;
        self.inner.reclaim(claim, from).await
    }
}

#[cfg(all(test, feature = "testing"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::UploadState;
    use crate::faults::{Faults, Switch};
    use crate::testing::{MemoryDigests, MemoryImages, MemoryStore};

    fn spec(spec: &str) -> Faults {
        Faults::parse(Some(spec)).unwrap()
    }

    fn ab(owner: &OwnerId, image: ImageId) -> DigestClaim<'_> {
        DigestClaim {
            owner,
            sha256: "ab",
            image,
        }
    }

    fn key(owner: &str) -> ObjectKey {
        ObjectKey::original(&owner.parse().unwrap(), ImageId::new())
    }

    fn row() -> ImageRecord {
        crate::testing::image("u1")
            .size(1)
            .state(UploadState::AwaitingUpload)
            .build()
    }

    #[tokio::test]
    async fn a_denied_entry_is_the_stores_refusal_and_a_plain_one_its_outage() {
        let store = Faulty::new(
            MemoryStore::default(),
            spec("s3_get@originals/t-x/:1:denied, s3_put:1"),
        );
        let denied = store
            .get(ObjectRef::current(&key("t-x")))
            .await
            .unwrap_err();
        assert!(matches!(denied, StoreError::Refused(_)), "{denied}");
        assert!(denied
            .to_string()
            .contains("injected access denied in s3_get"));
        let other = store
            .get(ObjectRef::current(&key("t-y")))
            .await
            .unwrap_err();
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
        assert!(all
            .list_by_owner(PageRequest {
                of: &owner,
                limit: 10,
                cursor: None
            })
            .await
            .is_ok());
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
        assert_eq!(digests.claim(&ab(&owner, first)).await.unwrap(), None);
        assert!(digests.claim(&ab(&owner, second)).await.is_err());
        let clean = Faulty::new(MemoryDigests::default(), spec("ddb_put:0"));
        assert_eq!(clean.claim(&ab(&owner, first)).await.unwrap(), None);
        assert_eq!(clean.claim(&ab(&owner, second)).await.unwrap(), Some(first));
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
