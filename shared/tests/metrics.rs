//! The pipeline's metrics as CloudWatch sees them: each `safelight::metrics` call, through the
//! EMF recorder the functions install, becomes an Embedded Metric Format document with the name,
//! unit and dimensions the template's alarms and dashboard refer to.

#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use lambda_runtime::tracing::subscriber::layer::SubscriberExt as _;
use safelight::{metrics, ErrorKind, Stage};
use serde_json::Value;

fn documents(collector: &metrics_cloudwatch_embedded::Collector) -> Vec<Value> {
    let mut buf = Vec::new();
    collector.flush(&mut buf).expect("flush");
    String::from_utf8(buf)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON document"))
        .collect()
}

/// (metric name, its dimension names, the document) for every metric in the documents.
fn metrics_in(docs: &[Value]) -> Vec<(String, Vec<String>, Value)> {
    let mut out = Vec::new();
    for doc in docs {
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        let dims: Vec<String> = directive["Dimensions"][0]
            .as_array()
            .expect("a dimension set")
            .iter()
            .map(|d| d.as_str().expect("a name").to_owned())
            .collect();
        for m in directive["Metrics"].as_array().expect("metrics") {
            out.push((
                m["Name"].as_str().expect("name").to_owned(),
                dims.clone(),
                doc.clone(),
            ));
        }
    }
    out
}

#[test]
fn every_metric_becomes_an_emf_document_with_the_dimensions_the_alarms_use() {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace("Safelight/test")
        .init()
        .expect("the only recorder of this test process");
    metrics::describe();

    metrics::render(Stage::Thumbnail, Duration::from_millis(42));
    metrics::bytes(Stage::Thumbnail, 1000, 300);
    metrics::failure(Stage::Variant, ErrorKind::Permanent);
    metrics::breaker_opened(Stage::Variant);
    metrics::breaker_closed(Stage::Variant);
    metrics::notice_sent("image:processing:complete");
    metrics::upload_to_complete(Duration::from_millis(1500));

    let docs = documents(collector);
    for doc in &docs {
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "Safelight/test"
        );
        assert!(doc["_aws"]["Timestamp"].is_u64(), "{doc}");
    }
    let found = metrics_in(&docs);
    let get = |name: &str| {
        found
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no EMF document carries {name}: {docs:?}"))
            .clone()
    };

    let (_, dims, doc) = get("RenderMs");
    assert_eq!(dims, ["Stage"]);
    assert_eq!(doc["Stage"], "thumbnail");
    assert_eq!(doc["RenderMs"], serde_json::json!([42.0]));
    let (_, _, doc) = get("BytesIn");
    assert_eq!(
        (doc["BytesIn"].as_u64(), doc["BytesOut"].as_u64()),
        (Some(1000), Some(300))
    );

    let (_, dims, doc) = get("Failures");
    assert_eq!(dims, ["Stage", "Kind"]);
    assert_eq!(
        (doc["Stage"].as_str(), doc["Kind"].as_str()),
        (Some("variant"), Some("permanent"))
    );

    // The template's breaker alarm: BreakerOpened with exactly the Stage dimension.
    let (_, dims, doc) = get("BreakerOpened");
    assert_eq!(dims, ["Stage"]);
    assert_eq!(
        (doc["Stage"].as_str(), doc["BreakerOpened"].as_u64()),
        (Some("variant"), Some(1))
    );
    assert_eq!(get("BreakerClosed").1, ["Stage"]);

    let (_, dims, doc) = get("NoticesSent");
    assert_eq!(dims, ["Type"]);
    assert_eq!(doc["Type"], "image:processing:complete");

    let (_, dims, doc) = get("UploadToCompleteMs");
    assert!(dims.is_empty(), "{dims:?}");
    assert_eq!(doc["UploadToCompleteMs"], serde_json::json!([1500.0]));

    let units: Vec<(String, String)> = docs
        .iter()
        .flat_map(|d| {
            d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|m| {
            (
                m["Name"].as_str().unwrap_or_default().to_owned(),
                m["Unit"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        units.contains(&("RenderMs".into(), "Milliseconds".into())),
        "{units:?}"
    );
    assert!(
        units.contains(&("BytesOut".into(), "Bytes".into())),
        "{units:?}"
    );

    // A flush takes what was recorded: the next one has nothing new to say.
    assert!(documents(collector).is_empty());

    // Every AWS SDK operation a function makes is counted, whatever the log level: the SDK's
    // operation span (target `aws_sdk_*`, named `Service.Operation`) becomes `AwsCalls` with
    // those two dimensions; the SDK's inner spans and our own are not counted.
    let counted = lambda_runtime::tracing::subscriber::registry()
        .with(safelight::aws::telemetry::sdk_calls_layer());
    tracing::subscriber::with_default(counted, || {
        for _ in 0..2 {
            tracing::debug_span!(target: "aws_sdk_s3::operation::get_object", "S3.GetObject",
                "rpc.service" = "S3", "rpc.method" = "GetObject")
            .in_scope(|| {
                tracing::debug_span!(target: "aws_smithy_runtime::client::orchestrator", "try_op")
                    .in_scope(|| {});
            });
        }
        tracing::debug_span!(target: "aws_sdk_dynamodb::operation::update_item",
            "DynamoDB.UpdateItem", "rpc.service" = "DynamoDB", "rpc.method" = "UpdateItem")
        .in_scope(|| {});
        tracing::info_span!("message", stage = "thumbnail").in_scope(|| {});
    });
    let docs = documents(collector);
    let mut calls: Vec<(String, String, u64)> = docs
        .iter()
        .filter_map(|d| {
            Some((
                d["Service"].as_str()?.to_owned(),
                d["Operation"].as_str()?.to_owned(),
                d["AwsCalls"].as_u64()?,
            ))
        })
        .collect();
    calls.sort();
    assert_eq!(
        calls,
        [
            ("DynamoDB".to_owned(), "UpdateItem".to_owned(), 1),
            ("S3".to_owned(), "GetObject".to_owned(), 2)
        ],
        "{docs:?}"
    );
    assert!(
        metrics_in(&docs)
            .iter()
            .all(|(name, dims, _)| name == "AwsCalls" && dims == &["Service", "Operation"]),
        "{docs:?}"
    );
}
