//! `OriginalsSource`: the bucket's originals listed page by page and their first bytes, for the
//! backfill that adopts originals without a row.

use aws_sdk_s3::error::SdkError;

use super::{sdk_failure, unavailable, S3Store};
use crate::domain::ObjectKey;
use crate::ports::{ListedOriginal, OriginalsSource, Page, StoreError};

impl OriginalsSource for S3Store {
    async fn list_originals(
        &self,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<Page<ListedOriginal>, StoreError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(crate::domain::ids::ORIGINALS_PREFIX)
            .set_start_after(start_after.map(str::to_owned))
            .max_keys(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000))
            .send()
            .await
            .map_err(sdk_failure)?;
        let items: Vec<ListedOriginal> = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ListedOriginal {
                    key: o.key()?.to_owned(),
                    size: u64::try_from(o.size().unwrap_or(0)).unwrap_or(0),
                })
            })
            .collect();
        let more = out.is_truncated().unwrap_or(false);
        let next = if more {
            items.last().map(|o| o.key.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn head_bytes(&self, key: &ObjectKey, n: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let out = self
            .get_object(key, None)
            .range(format!("bytes=0-{}", n.max(1) - 1))
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => return Ok(None),
            Err(e) => return Err(unavailable(e)),
        };
        let bytes = out.body.collect().await.map_err(unavailable)?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }
}
