//! Processing jobs as they arrive in SQS message bodies. Three shapes are accepted, so either
//! wiring works: an EventBridge "Object Created" event (the template's wiring), a classic S3
//! notification (`Records[]`, keys URL-encoded; `s3:TestEvent` is skipped), and Safelight's own
//! retry message.

use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::{ImageId, ObjectKey, OwnerId, ORIGINALS_PREFIX};
use super::status::Stage;

/// One original to process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The original's key.
    pub key: ObjectKey,
    /// Its owner, from the key.
    pub owner: OwnerId,
    /// Its image id, from the key.
    pub image_id: ImageId,
    /// The object's size, when the event says.
    pub size: Option<u64>,
}

/// Safelight's own message, sent by retries and the backfill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryMessage {
    /// Marks the shape; always `"safelight.process"`.
    pub kind: String,
    /// The image to process.
    pub image_id: ImageId,
    /// Its original's key.
    pub key: ObjectKey,
    /// The stage this message is for.
    pub stage: Stage,
}

impl RetryMessage {
    /// The message for one stage of an image.
    pub fn new(image_id: ImageId, key: ObjectKey, stage: Stage) -> Self {
        RetryMessage {
            kind: "safelight.process".to_owned(),
            image_id,
            key,
            stage,
        }
    }
}

/// A message that is not a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Not JSON, or JSON of no known shape.
    #[error("message is not an S3, EventBridge or Safelight event: {0}")]
    Unrecognised(String),
    /// An object key outside `originals/{owner}/{image_id}`.
    #[error("object key {0:?} is not an original Safelight made")]
    ForeignKey(String),
}

/// The jobs in a message body: none for a test event, usually one, several for a batched S3
/// notification.
pub fn parse_jobs(body: &str) -> Result<Vec<Job>, JobError> {
    let v: Value = serde_json::from_str(body).map_err(|e| JobError::Unrecognised(e.to_string()))?;
    let mut found: Vec<(String, Option<u64>)> = Vec::new();
    if v.get("kind").and_then(Value::as_str) == Some("safelight.process") {
        let m: RetryMessage =
            serde_json::from_value(v).map_err(|e| JobError::Unrecognised(e.to_string()))?;
        found.push((m.key.as_str().to_owned(), None));
    } else if v.get("detail-type").is_some() {
        if v["detail-type"] != "Object Created" {
            return Ok(Vec::new());
        }
        // EventBridge keys are not URL-encoded.
        let key = v["detail"]["object"]["key"].as_str().ok_or_else(|| {
            JobError::Unrecognised("EventBridge event without detail.object.key".into())
        })?;
        found.push((key.to_owned(), v["detail"]["object"]["size"].as_u64()));
    } else if let Some(records) = v.get("Records").and_then(Value::as_array) {
        for r in records {
            let name = r["eventName"].as_str().unwrap_or_default();
            if !name.starts_with("ObjectCreated") {
                continue;
            }
            let raw = r["s3"]["object"]["key"]
                .as_str()
                .ok_or_else(|| JobError::Unrecognised("S3 record without s3.object.key".into()))?;
            // S3 notifications URL-encode keys, with `+` for spaces.
            let key = percent_decode_str(&raw.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            found.push((key, r["s3"]["object"]["size"].as_u64()));
        }
    } else if v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Vec::new());
    } else {
        return Err(JobError::Unrecognised("no known fields".into()));
    }
    found
        .into_iter()
        .filter(|(key, _)| key.starts_with(ORIGINALS_PREFIX))
        .map(|(key, size)| {
            let (owner, image_id) =
                ObjectKey::parse_original(&key).map_err(|_| JobError::ForeignKey(key.clone()))?;
            Ok(Job {
                key: ObjectKey::original(&owner, image_id),
                owner,
                image_id,
                size,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "01KB4XV6Z0R8QW3M5T7N9P1C2D";

    #[test]
    fn an_eventbridge_object_created_event_is_one_job() {
        let body = json!({
            "version": "0", "detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": "b"}, "object": {"key": format!("originals/u-1/{ID}"), "size": 1234}}
        });
        let jobs = parse_jobs(&body.to_string()).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].owner.as_str(), "u-1");
        assert_eq!(jobs[0].image_id.to_string(), ID);
        assert_eq!(jobs[0].size, Some(1234));
    }

    #[test]
    fn s3_notification_keys_are_url_decoded_and_test_events_skipped() {
        let body = json!({"Records": [{
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "b"}, "object": {"key": format!("originals/auth0%7Cabc/{ID}")}}
        }]});
        let jobs = parse_jobs(&body.to_string()).unwrap();
        assert_eq!(jobs[0].owner.as_str(), "auth0|abc");
        let test = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"});
        assert_eq!(parse_jobs(&test.to_string()).unwrap(), vec![]);
    }

    #[test]
    fn derivative_keys_are_ignored_and_foreign_originals_refused() {
        let body = json!({"detail-type": "Object Created", "detail": {"object": {"key": "thumbnails/x/150.jpg"}}});
        assert_eq!(parse_jobs(&body.to_string()).unwrap(), vec![]);
        let body = json!({"detail-type": "Object Created", "detail": {"object": {"key": "originals/u/../../x"}}});
        assert!(matches!(
            parse_jobs(&body.to_string()),
            Err(JobError::ForeignKey(_))
        ));
        assert!(matches!(
            parse_jobs("not json"),
            Err(JobError::Unrecognised(_))
        ));
        assert!(matches!(parse_jobs("{}"), Err(JobError::Unrecognised(_))));
    }

    #[test]
    fn a_retry_message_round_trips() {
        let id: ImageId = ID.parse().unwrap();
        let owner: OwnerId = "u".parse().unwrap();
        let msg = RetryMessage::new(id, ObjectKey::original(&owner, id), Stage::Variant);
        let jobs = parse_jobs(&serde_json::to_string(&msg).unwrap()).unwrap();
        assert_eq!(jobs[0].image_id, id);
    }
}
