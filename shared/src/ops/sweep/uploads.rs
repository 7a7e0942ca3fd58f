//! Step 2: the uploads that never came. `stored` when the bucket has the original after all,
//! else expired.

use tokio::time::Instant;

use super::{secs, SweepError, SweepReport, Sweeper, ROW_PAGE};
use crate::domain::{ImageRecord, Status, Timestamp, UploadState};
use crate::ports::{ImageRepository, ObjectStore, StatusIndex, StatusPage};

impl<R: ImageRepository + StatusIndex, A, S: ObjectStore, Q> Sweeper<'_, R, A, S, Q> {
    /// Rows still `awaiting_upload` past the link's lifetime and grace: `stored` when the bucket
    /// has the original, else expired. Whether it got through them within the budget.
    pub(super) async fn expire_uploads(
        &self,
        now: Timestamp,
        until: Instant,
        report: &mut SweepReport,
    ) -> Result<bool, SweepError> {
        let window = self.policy.presign_lifetime + self.policy.upload_grace;
        let expired_before = now.plus_secs(-secs(window));
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .ports
                .images
                .page_by_status(
                    StatusPage::oldest_first(Status::Pending, ROW_PAGE).after(cursor.as_deref()),
                )
                .await?;
            for row in &page.items {
                // Oldest pending first: past the horizon, nothing later has expired either
                // (a row's last change is never older than its status).
                if row.status_since() >= expired_before {
                    return Ok(true);
                }
                if row.upload_state != UploadState::AwaitingUpload
                    || row.updated_at >= expired_before
                {
                    continue;
                }
                if Instant::now() >= until {
                    return Ok(false);
                }
                self.settle_upload(row, now, expired_before, report).await?;
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(true),
            }
        }
    }

    pub(super) async fn settle_upload(
        &self,
        row: &ImageRecord,
        now: Timestamp,
        expired_before: Timestamp,
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        let waiting = |r: &ImageRecord| {
            r.upload_state == UploadState::AwaitingUpload
                && r.processing_status == Status::Pending
                && r.updated_at < expired_before
        };
        if self.ports.store.head(&row.original_key).await?.is_some() {
            // It did arrive; its processing has not started yet (a backlog, an open circuit).
            let found = self
                .rows()
                .modify(row.image_id, |r| Ok(waiting(r) && r.upload_arrived(now)))
                .await?;
            if found.is_some_and(|r| r.upload_state == UploadState::Stored && r.updated_at == now) {
                tracing::info!(image_id = %row.image_id, "the upload link expired but the original is stored: the row says so, not expired");
                report.uploads_found += 1;
            }
            return Ok(());
        }
        let expired = self
            .rows()
            .modify(row.image_id, |r| {
                if !waiting(r) {
                    return Ok(false);
                }
                r.expire_upload(now).map(|()| true)
            })
            .await?;
        if expired.is_some_and(|r| r.upload_state == UploadState::Expired) {
            tracing::info!(image_id = %row.image_id, "upload never came; row expired");
            report.uploads_expired += 1;
        }
        Ok(())
    }
}
