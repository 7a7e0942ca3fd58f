//! The original of a job: its row (adopting an original that has none), the version pinned on
//! the row, and its bytes.
//!
//! Write-once originals: the bucket keeps versions, and the first attempt pins the version it
//! processes on the row (the version the "Object Created" event names; when the event names none,
//! as the local emulator's does not, the key's current version). Every read of the original then
//! names the pinned version, and a write that lands on the key later is not the image: its event
//! is ignored and the version it made is deleted, so the pinned one stays the current one (a
//! lifecycle rule expires non-current versions, which must never include the pinned one).

use crate::domain::{
    ContentType, ErrorKind, ImageRecord, Job, NewImage, Origin, Timestamp, UploadState,
};
use crate::ports::{ImageRepository, ObjectRef, ObjectStore, StoredObject};

use super::rows::RowWriter;
use super::JobFailure;

/// Reads the row, adopting an original that has none: an object under
/// `originals/{owner}/{image_id}` with no row (e.g. put there by a migration) becomes a new
/// image of the key's owner, typed by its magic bytes, and the object read is returned with it.
pub(super) async fn row_or_adopt<S: ObjectStore, R: ImageRepository>(
    store: &S,
    rows: RowWriter<'_, R>,
    job: &Job,
) -> Result<(ImageRecord, Option<StoredObject>), JobFailure> {
    if let Some(r) = rows.read(job.image_id).await? {
        return Ok((r, None));
    }
    let object = store.get(ObjectRef::current(&job.key)).await?;
    let Some(content_type) = ContentType::sniff(&object.bytes) else {
        return Err(JobFailure::permanent(
            ErrorKind::Rejected,
            "an original without a row is not a recognisable image; ignored",
        ));
    };
    let record = ImageRecord::new(
        NewImage {
            image_id: job.image_id,
            owner_id: job.owner.clone(),
            filename: None,
            content_type,
            byte_size: object.bytes.len() as u64,
            sha256: None,
            upload_state: UploadState::Stored,
        },
        Timestamp::now(),
    );
    tracing::info!(owner = %job.owner, "adopting an original that had no row");
    rows.create_if_absent(&record).await?;
    let row = rows
        .read(job.image_id)
        .await?
        .ok_or_else(|| JobFailure::retryable("the adopted row vanished"))?;
    Ok((row, Some(object)))
}

/// A storage event for an image whose original is pinned: a write that landed on the key
/// after the pinned version is not the image. Deletes it (the pinned version becomes current
/// again) and says whether this job is such a write's event, to be ignored.
pub(super) async fn keep_pinned_current<S: ObjectStore>(
    store: &S,
    job: &Job,
    pinned: &str,
) -> Result<bool, JobFailure> {
    let Origin::Stored { version } = &job.origin else {
        return Ok(false);
    };
    let intruder = match version {
        Some(v) if v == pinned => return Ok(false),
        Some(v) => Some(v.clone()),
        // No version in the event (the local emulator's EventBridge detail): look at what
        // is current now.
        None => store
            .head(&job.key)
            .await?
            .and_then(|meta| meta.version)
            .filter(|current| current != pinned),
    };
    let Some(intruder) = intruder else {
        return Ok(false);
    };
    tracing::warn!(
        version = %intruder,
        pinned = %pinned,
        "a later write to a processed original is not the image: removing that version, keeping the processed one"
    );
    store.delete_version(&job.key, &intruder).await?;
    // Without a version in the event this may be the event of the pinned write itself.
    Ok(version.is_some())
}

/// The pinned version of the original. When none is pinned yet (no version in the event,
/// as from the local emulator, or a row from before versioning), the version this read got
/// is pinned now, unless another attempt pinned one meanwhile: then that one is read.
/// Returns the bytes and the row as this attempt last knows it (`row`, or after the pin).
pub(super) async fn pinned_bytes<S: ObjectStore, R: ImageRepository>(
    store: &S,
    rows: RowWriter<'_, R>,
    job: &Job,
    row: ImageRecord,
    adopted: Option<StoredObject>,
) -> Result<(Vec<u8>, ImageRecord), JobFailure> {
    let pinned = row.original_version.as_deref();
    let object = match adopted {
        Some(object) if object.version.as_deref() == pinned => object,
        _ => {
            let object = ObjectRef {
                key: &job.key,
                version: pinned,
            };
            store.get(object).await?
        }
    };
    if pinned.is_some() {
        return Ok((object.bytes, row));
    }
    let Some(read) = object.version.clone() else {
        return Ok((object.bytes, row)); // a bucket without versioning
    };
    let after = rows
        .modify_from(row, |r| {
            if r.original_version.is_some() {
                return Ok(false);
            }
            r.original_version = Some(read.clone());
            Ok(true)
        })
        .await?
        .ok_or_else(|| JobFailure::retryable("the image row disappeared"))?;
    match after.original_version.clone() {
        Some(won) if won != read => {
            let won = ObjectRef {
                key: &job.key,
                version: Some(&won),
            };
            Ok((store.get(won).await?.bytes, after))
        }
        _ => Ok((object.bytes, after)),
    }
}
