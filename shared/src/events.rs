//! The shapes processing messages arrive in, read with the `aws_lambda_events` types rather than
//! by hand: an EventBridge "Object Created" event (the template's wiring), a classic S3
//! notification (`Records[]`, keys URL-encoded, read leniently; `s3:TestEvent` skipped), and
//! Safelight's own retry message. Each becomes domain [`Job`]s; the domain never sees these
//! types. (`aws_lambda_events` is a types-only dependency, so the pipeline, the sweeper and the
//! admin redrive use this without the SDK adapters.)

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::s3::S3Entity;
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{Job, JobError, Origin, RetryMessage};

/// The `detail` of an S3 "Object Created" event on EventBridge: what Safelight reads of it.
#[derive(Debug, Deserialize, Serialize)]
struct ObjectCreated {
    object: CreatedObject,
}

#[derive(Debug, Deserialize, Serialize)]
struct CreatedObject {
    key: String,
    #[serde(default)]
    size: Option<u64>,
    /// Present when the bucket has versioning (the local emulator leaves it out).
    #[serde(default, rename = "version-id")]
    version_id: Option<String>,
}

/// A classic S3 notification, read leniently: only `eventName` and the `s3` entity are required
/// (`aws_lambda_events`' whole `S3EventRecord` also insists on `eventTime`, `userIdentity` and
/// `requestParameters`, which some S3-compatible stores leave out).
#[derive(Debug, Deserialize)]
struct Notification {
    #[serde(rename = "Records")]
    records: Vec<NotificationRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotificationRecord {
    #[serde(default)]
    event_name: Option<String>,
    s3: S3Entity,
}

fn unrecognised(e: impl std::fmt::Display) -> JobError {
    JobError::Unrecognised(e.to_string())
}

/// The jobs in a message body: none for a test event or another prefix, usually one, several for
/// a batched S3 notification.
pub fn parse_jobs(body: &str) -> Result<Vec<Job>, JobError> {
    let v: Value = serde_json::from_str(body).map_err(unrecognised)?;
    let mut found: Vec<(String, Option<u64>, Origin)> = Vec::new();
    if v.get("kind").and_then(Value::as_str) == Some("safelight.process") {
        let m: RetryMessage = serde_json::from_value(v).map_err(unrecognised)?;
        found.push((m.key.as_str().to_owned(), None, Origin::Requested));
    } else if v.get("detail-type").is_some() {
        if v["detail-type"] != "Object Created" {
            return Ok(Vec::new());
        }
        // EventBridge keys are not URL-encoded.
        let event: EventBridgeEvent<ObjectCreated> =
            serde_json::from_value(v).map_err(unrecognised)?;
        let object = event.detail.object;
        let origin = Origin::Stored {
            version: object.version_id,
        };
        found.push((object.key, object.size, origin));
    } else if v.get("Records").is_some() {
        let event: Notification = serde_json::from_value(v).map_err(unrecognised)?;
        for record in event.records {
            if !record
                .event_name
                .as_deref()
                .unwrap_or_default()
                .starts_with("ObjectCreated")
            {
                continue;
            }
            let raw =
                record.s3.object.key.ok_or_else(|| {
                    JobError::Unrecognised("S3 record without s3.object.key".into())
                })?;
            // S3 notifications URL-encode keys, with `+` for spaces.
            let key = percent_decode_str(&raw.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            let size = record.s3.object.size.and_then(|s| u64::try_from(s).ok());
            let origin = Origin::Stored {
                version: record.s3.object.version_id.clone(),
            };
            found.push((key, size, origin));
        }
    } else if v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Vec::new());
    } else {
        return Err(JobError::Unrecognised("no known fields".into()));
    }
    found
        .into_iter()
        .filter_map(|(key, size, origin)| Job::for_original_key(&key, size, origin).transpose())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ImageId, ObjectKey, OwnerId, Stage};
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
        assert_eq!(jobs[0].origin, Origin::Stored { version: None });
    }

    #[test]
    fn the_version_an_object_created_event_names_is_kept_for_the_write_once_pin() {
        let eventbridge = json!({
            "version": "0", "detail-type": "Object Created", "source": "aws.s3",
            "detail": {"object": {"key": format!("originals/u-1/{ID}"), "size": 3,
                                  "version-id": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"}}
        });
        let notification = json!({"Records": [{
            "eventName": "ObjectCreated:Post",
            "s3": {"bucket": {"name": "b"},
                   "object": {"key": format!("originals/u-1/{ID}"), "size": 3,
                              "versionId": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"}}
        }]});
        for body in [eventbridge, notification] {
            let jobs = parse_jobs(&body.to_string()).unwrap();
            assert_eq!(
                jobs[0].origin,
                Origin::Stored {
                    version: Some("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY".to_owned())
                }
            );
        }
    }

    #[test]
    fn s3_notification_keys_are_url_decoded_and_test_events_skipped() {
        // As lean as some S3-compatible stores send it.
        let body = json!({"Records": [{
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "b"},
                   "object": {"key": format!("originals/auth0%7Cabc/{ID}"), "size": 10}}
        }]});
        let jobs = parse_jobs(&body.to_string()).unwrap();
        assert_eq!(jobs[0].owner.as_str(), "auth0|abc");
        assert_eq!(jobs[0].size, Some(10));
        let test = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"});
        assert_eq!(parse_jobs(&test.to_string()).unwrap(), vec![]);
    }

    #[test]
    fn the_sample_events_parse() {
        for (name, n) in [
            ("sqs-thumbnails-eventbridge.json", 1),
            ("sqs-variants-s3-notification.json", 1),
        ] {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/");
            let sqs: Value =
                serde_json::from_str(&std::fs::read_to_string(format!("{path}{name}")).unwrap())
                    .unwrap();
            let body = sqs["Records"][0]["body"].as_str().unwrap();
            assert_eq!(parse_jobs(body).unwrap().len(), n, "{name}");
        }
    }

    #[test]
    fn derivative_keys_are_ignored_and_foreign_originals_refused() {
        let body = json!({"detail-type": "Object Created", "source": "aws.s3",
                          "detail": {"object": {"key": "thumbnails/x/150.jpg"}}});
        assert_eq!(parse_jobs(&body.to_string()).unwrap(), vec![]);
        let body = json!({"detail-type": "Object Created", "source": "aws.s3",
                          "detail": {"object": {"key": "originals/u/../../x"}}});
        assert!(matches!(
            parse_jobs(&body.to_string()),
            Err(JobError::ForeignKey(_))
        ));
        assert!(matches!(
            parse_jobs("not json"),
            Err(JobError::Unrecognised(_))
        ));
        assert!(matches!(parse_jobs("{}"), Err(JobError::Unrecognised(_))));
        let no_source = json!({"detail-type": "Object Created", "detail": {"object": {"key": "originals/u/x"}}});
        assert!(matches!(
            parse_jobs(&no_source.to_string()),
            Err(JobError::Unrecognised(_))
        ));
    }

    #[test]
    fn a_retry_message_round_trips() {
        let id: ImageId = ID.parse().unwrap();
        let owner: OwnerId = "u".parse().unwrap();
        let msg = RetryMessage::new(id, ObjectKey::original(&owner, id), Stage::Variant);
        let jobs = parse_jobs(&serde_json::to_string(&msg).unwrap()).unwrap();
        assert_eq!(jobs[0].image_id, id);
        assert_eq!(jobs[0].origin, Origin::Requested);
    }
}
