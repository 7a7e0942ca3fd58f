//! The bucket in memory.

use super::*;
use crate::domain::LinkWindow;
use crate::ports::ObjectRef;

/// A bucket in memory with versioning: key -> its versions, oldest first, the last one current.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    objects: Arc<Mutex<BTreeMap<String, Vec<MemoryVersion>>>>,
    minted: Arc<Mutex<u64>>,
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

    async fn get(&self, object: ObjectRef<'_>) -> Result<StoredObject, StoreError> {
        let (key, version) = (object.key, object.version);
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
    async fn link(&self, object: ObjectRef<'_>, window: LinkWindow) -> Result<String, StoreError> {
        let (key, version) = (object.key, object.version);
        let signed = window.signed_at.unix_millis() / 1000;
        let expires = window.lifetime.as_secs();
        Ok(match version {
            Some(v) => format!("https://memory.invalid/{key}?versionId={v}&X-Amz-Date={signed}&X-Amz-Expires={expires}&X-Amz-Signature=fake"),
            None => format!("https://memory.invalid/{key}?X-Amz-Date={signed}&X-Amz-Expires={expires}&X-Amz-Signature=fake"),
        })
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
