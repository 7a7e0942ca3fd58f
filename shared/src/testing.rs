//! In-memory fakes of the ports, for handler tests (feature `testing`). They keep the semantics
//! handlers rely on: not-found, conditional create, version-checked update, newest-first paging.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::domain::{ImageId, ImageRecord, ObjectKey, OwnerId, RetryMessage, Stage, Timestamp};
use crate::ports::{
    ImageRepository, JobQueue, ObjectMeta, ObjectStore, Page, PresignedPost, PresignedRequest,
    QueueError, RepoError, StoreError, UploadConstraints,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A bucket in memory: key -> (bytes, content type).
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, (Vec<u8>, String)>>,
    /// When set, every call fails as unavailable.
    pub failing: Mutex<bool>,
}

impl MemoryStore {
    /// Keys currently stored.
    pub fn keys(&self) -> Vec<String> {
        lock(&self.objects).keys().cloned().collect()
    }

    /// An object's bytes and content type.
    pub fn object(&self, key: &str) -> Option<(Vec<u8>, String)> {
        lock(&self.objects).get(key).cloned()
    }

    /// Puts an object directly (test setup).
    pub fn insert(&self, key: &str, body: Vec<u8>, content_type: &str) {
        lock(&self.objects).insert(key.to_owned(), (body, content_type.to_owned()));
    }

    fn check(&self) -> Result<(), StoreError> {
        if *lock(&self.failing) {
            return Err(StoreError::Unavailable("memory store set to fail".into()));
        }
        Ok(())
    }
}

impl ObjectStore for MemoryStore {
    async fn put(
        &self,
        key: &ObjectKey,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.insert(key.as_str(), body, content_type);
        Ok(())
    }

    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, StoreError> {
        self.check()?;
        self.object(key.as_str())
            .map(|(b, _)| b)
            .ok_or_else(|| StoreError::NotFound(key.to_string()))
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, StoreError> {
        self.check()?;
        Ok(self.object(key.as_str()).map(|(b, ct)| ObjectMeta {
            size: b.len() as u64,
            content_type: Some(ct),
        }))
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        self.check()?;
        lock(&self.objects).remove(key.as_str());
        Ok(())
    }

    async fn presign_put(
        &self,
        key: &ObjectKey,
        c: &UploadConstraints,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        self.check()?;
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
        self.check()?;
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

    async fn presign_get(
        &self,
        key: &ObjectKey,
        _expires_in: Duration,
    ) -> Result<String, StoreError> {
        self.check()?;
        Ok(format!("https://memory.invalid/{key}?X-Amz-Signature=fake"))
    }
}

/// The images table in memory.
#[derive(Debug, Default)]
pub struct MemoryImages {
    rows: Mutex<HashMap<ImageId, ImageRecord>>,
    /// When set, every call fails as unavailable.
    pub failing: Mutex<bool>,
}

impl MemoryImages {
    /// All rows.
    pub fn rows(&self) -> Vec<ImageRecord> {
        lock(&self.rows).values().cloned().collect()
    }

    /// Puts a row directly (test setup).
    pub fn insert(&self, record: ImageRecord) {
        lock(&self.rows).insert(record.image_id, record);
    }

    fn check(&self) -> Result<(), RepoError> {
        if *lock(&self.failing) {
            return Err(RepoError::Unavailable("memory table set to fail".into()));
        }
        Ok(())
    }
}

impl ImageRepository for MemoryImages {
    async fn create(&self, record: &ImageRecord) -> Result<(), RepoError> {
        self.check()?;
        let mut rows = lock(&self.rows);
        if rows.contains_key(&record.image_id) {
            return Err(RepoError::Conflict);
        }
        rows.insert(record.image_id, record.clone());
        Ok(())
    }

    async fn get(&self, id: ImageId) -> Result<Option<ImageRecord>, RepoError> {
        self.check()?;
        Ok(lock(&self.rows).get(&id).cloned())
    }

    async fn list_by_owner(
        &self,
        owner: &OwnerId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<ImageRecord>, RepoError> {
        self.check()?;
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
        self.check()?;
        let mut rows = lock(&self.rows);
        match rows.get(&record.image_id) {
            Some(current) if current.version == record.version => {
                record.version += 1;
                rows.insert(record.image_id, record.clone());
                Ok(())
            }
            _ => Err(RepoError::Conflict),
        }
    }

    async fn delete(&self, id: ImageId) -> Result<(), RepoError> {
        self.check()?;
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
    /// When set, every call fails as unavailable.
    pub failing: Mutex<bool>,
}

impl MemoryQueue {
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
        if *lock(&self.failing) {
            return Err(QueueError::Unavailable("memory queue set to fail".into()));
        }
        lock(&self.sent).push(message.clone());
        Ok(())
    }

    async fn delay(
        &self,
        stage: Stage,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), QueueError> {
        if *lock(&self.failing) {
            return Err(QueueError::Unavailable("memory queue set to fail".into()));
        }
        lock(&self.delays).push((stage, receipt_handle.to_owned(), delay));
        Ok(())
    }
}
