//! Malformed events invoked straight into every deployed function with the Lambda API, as a
//! misconfigured event source (or anyone allowed to invoke) could: each is refused the way its
//! contract says, and none writes anything.

use anyhow::Result;
use safelight::ImageId;
use safelight_e2e::lambda::Invocation;
use safelight_e2e::Stack;
use serde_json::{json, Value};

use crate::code;

const HTTP_FUNCTIONS: [&str; 3] = [
    "SAFELIGHT_UPLOAD_FUNCTION",
    "SAFELIGHT_IMAGES_FUNCTION",
    "SAFELIGHT_ADMIN_FUNCTION",
];
const ALL_FUNCTIONS: [&str; 7] = [
    "SAFELIGHT_UPLOAD_FUNCTION",
    "SAFELIGHT_IMAGES_FUNCTION",
    "SAFELIGHT_ADMIN_FUNCTION",
    "SAFELIGHT_THUMBNAIL_FUNCTION",
    "SAFELIGHT_VARIANT_FUNCTION",
    "SAFELIGHT_WS_FUNCTION",
    "SAFELIGHT_NOTIFY_FUNCTION",
];

fn sample(name: &str) -> Value {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

async fn invoke(stack: &Stack, function: &str, event: &Value) -> Result<Invocation> {
    stack.invoke(function, event.to_string().as_bytes()).await
}

/// An HTTP API answer's status and JSON body.
fn http_answer(out: &Invocation) -> (i64, Value) {
    assert_eq!(out.function_error, None, "{:?}", out.payload);
    let body = out.payload["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (out.payload["statusCode"].as_i64().unwrap_or(-1), body)
}

#[tokio::test]
async fn an_event_of_the_wrong_shape_fails_every_function_before_its_handler_runs() -> Result<()> {
    let stack = Stack::load().await?;
    for function in ALL_FUNCTIONS {
        for payload in [json!({"hello": 1}), json!([]), json!("text"), json!(null)] {
            let out = invoke(&stack, function, &payload).await?;
            assert_eq!(
                out.function_error.as_deref(),
                Some("Unhandled"),
                "{function} {payload}: {:?}",
                out.payload
            );
            assert!(
                out.payload["errorType"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("Deserialize"),
                "{function} {payload}: {:?}",
                out.payload
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn an_http_event_without_the_authorizers_claims_is_refused_by_the_function_itself(
) -> Result<()> {
    let stack = Stack::load().await?;
    let sub = format!("t-direct-{}", ulid::Ulid::new().to_string().to_lowercase());
    let cases = [
        ("SAFELIGHT_UPLOAD_FUNCTION", "upload-presign.json"),
        ("SAFELIGHT_IMAGES_FUNCTION", "images-list.json"),
        ("SAFELIGHT_ADMIN_FUNCTION", "admin-processing-queue.json"),
    ];
    for (function, file) in cases {
        let mut event = sample(file);
        // The sample with a subject that cannot be an owner id, without the authorizer, and with
        // claims the authorizer would never pass on (no `sub`).
        let mut no_authorizer = event.clone();
        no_authorizer["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("authorizer");
        let mut no_sub = event.clone();
        no_sub["requestContext"]["authorizer"]["jwt"]["claims"]
            .as_object_mut()
            .unwrap()
            .remove("sub");
        let mut bad_sub = event.clone();
        bad_sub["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!("../victim");
        for (name, e) in [
            ("no authorizer", &no_authorizer),
            ("no sub", &no_sub),
            ("sub ../victim", &bad_sub),
        ] {
            let (status, body) = http_answer(&invoke(&stack, function, e).await?);
            assert_eq!(
                (status, code(&body)),
                (401, "unauthorized"),
                "{function} {name}: {body}"
            );
        }
        // Positive control: the same sample with a real subject passes the identity check.
        event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(sub);
        let (status, body) = http_answer(&invoke(&stack, function, &event).await?);
        assert_ne!(status, 401, "{function}: {body}");
    }
    // The admin function reached without the gateway's scope check (defence in depth): a
    // genuine user's claims, an admin group, or a look-alike scope are not the admin scope.
    for (claim, value) in [
        ("groups", "[users admins administrator]"),
        ("groups", "[admin]"),
        ("scope", "openid x,safelight/admin"),
    ] {
        let mut event = sample("admin-processing-queue.json");
        let claims = &mut event["requestContext"]["authorizer"]["jwt"]["claims"];
        claims["sub"] = json!(sub);
        claims["scope"] = json!("openid");
        claims[claim] = json!(value);
        let (status, body) =
            http_answer(&invoke(&stack, "SAFELIGHT_ADMIN_FUNCTION", &event).await?);
        assert_eq!(
            (status, code(&body)),
            (403, "forbidden"),
            "{claim}={value}: {body}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn http_events_with_broken_bodies_or_unknown_routes_get_their_error_codes() -> Result<()> {
    let stack = Stack::load().await?;
    let sub = format!("t-direct-{}", ulid::Ulid::new().to_string().to_lowercase());
    let mut upload = sample("upload-presign.json");
    upload["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(sub);
    upload["isBase64Encoded"] = json!(true);
    upload["body"] = json!("%%% not base64 %%%");
    let (status, body) = http_answer(&invoke(&stack, "SAFELIGHT_UPLOAD_FUNCTION", &upload).await?);
    assert_eq!((status, code(&body)), (400, "bad_body"), "{body}");
    for function in HTTP_FUNCTIONS {
        let mut event = sample("images-list.json");
        event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(sub);
        // The admin scope, so the admin function gets past its access check to the router.
        event["requestContext"]["authorizer"]["jwt"]["claims"]["scope"] =
            json!("openid safelight/admin");
        event["requestContext"]["http"]["method"] = json!("DELETE");
        event["requestContext"]["http"]["path"] = json!("/api/images/../../admin");
        event["rawPath"] = json!("/api/images/../../admin");
        event["routeKey"] = json!("$default");
        let (status, body) = http_answer(&invoke(&stack, function, &event).await?);
        if function == "SAFELIGHT_UPLOAD_FUNCTION" {
            // One route only: it reads the body's type, not the path.
            assert!((400..500).contains(&status), "{function}: {status} {body}");
        } else {
            assert_eq!(
                (status, code(&body)),
                (404, "not_found"),
                "{function}: {body}"
            );
        }
    }
    Ok(())
}

fn sqs_event(bodies: &[(&str, String)]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id, "receiptHandle": format!("hostile-{id}"), "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795870800000",
                               "SenderId": "x", "ApproximateFirstReceiveTimestamp": "1795870800000"},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:hostile", "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({"Records": records})
}

#[tokio::test]
async fn processors_keep_unreadable_messages_for_the_dlq_and_skip_what_is_not_an_original(
) -> Result<()> {
    let stack = Stack::load().await?;
    let victim = ImageId::new();
    let eventbridge = |key: &str| {
        json!({"version": "0", "detail-type": "Object Created", "source": "aws.s3",
               "detail": {"bucket": {"name": "b"}, "object": {"key": key, "size": 1}}})
        .to_string()
    };
    let bodies = vec![
        ("garbage", "garbage".to_owned()),
        ("empty", String::new()),
        (
            "no-key",
            json!({"detail-type": "Object Created", "detail": {}}).to_string(),
        ),
        (
            "traversal",
            eventbridge(&format!("originals/../../victim/{victim}")),
        ),
        ("not-an-id", eventbridge("originals/someone/not-a-ulid")),
        (
            "test-event",
            json!({"Event": "s3:TestEvent", "Service": "Amazon S3"}).to_string(),
        ),
        (
            "other-prefix",
            eventbridge(&format!("thumbnails/{victim}/150.jpg")),
        ),
        (
            "other-detail",
            json!({"detail-type": "Object Deleted", "detail": {}}).to_string(),
        ),
    ];
    for function in ["SAFELIGHT_THUMBNAIL_FUNCTION", "SAFELIGHT_VARIANT_FUNCTION"] {
        let out = invoke(&stack, function, &sqs_event(&bodies)).await?;
        assert_eq!(out.function_error, None, "{function}: {:?}", out.payload);
        let mut kept: Vec<&str> = out.payload["batchItemFailures"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["itemIdentifier"].as_str())
            .collect();
        kept.sort_unstable();
        // Unreadable messages stay (they reach the DLQ for a human); what is not an original of
        // ours is acknowledged and ignored.
        assert_eq!(
            kept,
            vec!["empty", "garbage", "no-key", "not-an-id", "traversal"],
            "{function}"
        );
    }
    for prefix in [
        format!("thumbnails/{victim}/"),
        format!("variants/{victim}/"),
        "originals/victim/".into(),
    ] {
        assert!(stack.keys(&prefix).await?.is_empty(), "{prefix}");
    }
    Ok(())
}

#[tokio::test]
async fn the_ws_function_refuses_events_without_a_connection_and_answers_strangers_with_nothing(
) -> Result<()> {
    let stack = Stack::load().await?;
    let mut ping = sample("ws-ping.json");
    ping["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("connectionId");
    let out = invoke(&stack, "SAFELIGHT_WS_FUNCTION", &ping).await?;
    assert_eq!(out.function_error, None, "{:?}", out.payload);
    assert_eq!(out.payload["statusCode"], 500, "{:?}", out.payload);
    // A resume from a connection that never connected: no row, nothing replayed to it.
    let mut resume = sample("ws-resume.json");
    resume["requestContext"]["connectionId"] = json!(format!("stranger-{}", ulid::Ulid::new()));
    resume["body"] = json!(r#"{"action":"resume","since":0}"#);
    let out = invoke(&stack, "SAFELIGHT_WS_FUNCTION", &resume).await?;
    assert_eq!(out.function_error, None, "{:?}", out.payload);
    assert!(
        out.payload["body"].is_null() || out.payload["body"] == "",
        "a stranger got a body: {:?}",
        out.payload
    );
    Ok(())
}

#[tokio::test]
async fn notify_skips_stream_records_that_are_not_image_rows_and_sends_nothing() -> Result<()> {
    let stack = Stack::load().await?;
    let owner = format!("t-notify-{}", ulid::Ulid::new().to_string().to_lowercase());
    let mut event = sample("notify-complete.json");
    let record = &mut event["Records"][0];
    record["eventID"] = json!(format!("hostile-{}", ulid::Ulid::new()));
    // The new image names an owner but is not an image row (no status fields, wrong types).
    record["dynamodb"]["NewImage"] = json!({
        "image_id": {"S": "not-an-id"}, "owner_id": {"S": owner},
        "processing_status": {"N": "7"}
    });
    let out = invoke(&stack, "SAFELIGHT_NOTIFY_FUNCTION", &event).await?;
    assert_eq!(out.function_error, None, "{:?}", out.payload);
    assert_eq!(
        out.payload["batchItemFailures"],
        json!([]),
        "a record that can never be a notice must not block the shard"
    );
    let stored = stack
        .dynamodb()
        .query()
        .table_name(stack.var("SAFELIGHT_NOTICES_TABLE")?)
        .key_condition_expression("owner_id = :o")
        .expression_attribute_values(
            ":o",
            aws_sdk_dynamodb::types::AttributeValue::S(owner.clone()),
        )
        .send()
        .await?;
    assert_eq!(stored.count(), 0, "a notice was stored for {owner}");
    Ok(())
}
