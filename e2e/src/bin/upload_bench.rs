//! `make bench` (upload part): the upload handler's duration — presign PUT + POST policy + the
//! conditional row write — measured inside the handler, against the local stack's S3 and
//! DynamoDB, over many requests; and the same requests end to end through the emulator's HTTP
//! API, to show how much the emulator's invoke path adds. The anchor, measured in the same run,
//! is one bare DynamoDB PutItem round trip: the handler's floor. The handler's time includes the
//! per-owner limits' checks (the rate's conditional write, the query of uploads awaiting their
//! bytes); the requests are spread over owners of [`PER_OWNER`] requests each, so none is refused
//! and each owner's query reads what a busy owner's would.
//!
//! Usage: `cargo run --release -p safelight-e2e --bin upload_bench -- [requests]` with the stack
//! up (`make dev`). Prints a markdown table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use safelight::aws::runtime::invoke;
use safelight::aws::{DynamoDigests, DynamoImages, DynamoRates, S3Store};
use safelight_e2e::Stack;
use serde_json::json;
use upload::{Limits, Upload};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(name: &str, mut samples: Vec<Duration>, anchor: Duration) -> String {
    samples.sort();
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    format!(
        "| {name} | {} | {:.2} | {:.2} | {:.1}x | {:.1}x |",
        samples.len(),
        ms(p50),
        ms(p99),
        ms(p50) / ms(anchor),
        ms(p99) / ms(anchor)
    )
}

/// Requests per owner (each makes one in-process and one HTTP request): under the default
/// `MaxAwaitingUploads` (50) and `UploadsPerMinute` (300).
const PER_OWNER: usize = 20;

#[tokio::main]
async fn main() -> Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let stack = Stack::load().await?;
    let handler = Arc::new(Upload::new(
        S3Store::new(&stack.sdk, stack.var("SAFELIGHT_BUCKET")?),
        DynamoImages::new(&stack.sdk, stack.var("SAFELIGHT_IMAGES_TABLE")?),
        DynamoDigests::new(&stack.sdk, stack.var("SAFELIGHT_CONTROL_TABLE")?),
        DynamoRates::new(&stack.sdk, stack.var("SAFELIGHT_CONTROL_TABLE")?),
        Limits {
            max_upload_bytes: 25 * 1024 * 1024,
            presign_expires: Duration::from_secs(900),
            owner: safelight::limits::OwnerLimits::default(),
        },
    ))
    .router();
    let event: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/upload-presign.json"
    ))?)?;
    let as_owner = |sub: &str| -> Result<ApiGatewayV2httpRequest> {
        let mut event = event.clone();
        event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(sub);
        Ok(serde_json::from_value(event)?)
    };
    let (sub, mut token) = stack.fresh_user().await?;
    let mut request = as_owner(&sub)?;

    // Warm up connections and caches.
    for _ in 0..20 {
        invoke(handler.clone(), request.clone()).await;
    }

    let ddb = stack.dynamodb();
    let table = stack.var("SAFELIGHT_CONTROL_TABLE")?.to_owned();
    let mut anchor = Vec::with_capacity(n);
    let mut inside = Vec::with_capacity(n);
    let mut http = Vec::with_capacity(n);
    let body = json!({"filename": "bench.jpg", "content_type": "image/jpeg", "size": 2_000_000});
    // Interleaved, so noise from the shared machine hits all three alike.
    for i in 0..n {
        if i % PER_OWNER == 0 {
            let (sub, fresh) = stack.fresh_user().await?;
            request = as_owner(&sub)?;
            token = fresh;
        }
        let t = Instant::now();
        ddb.put_item()
            .table_name(&table)
            .item(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("bench#{i}")),
            )
            .send()
            .await?;
        anchor.push(t.elapsed());

        let t = Instant::now();
        let resp = invoke(handler.clone(), request.clone()).await;
        inside.push(t.elapsed());
        anyhow::ensure!(
            resp.status_code == 201,
            "handler answered {}",
            resp.status_code
        );

        let t = Instant::now();
        let (status, _) = stack
            .post_json("/api/images/upload", Some(&token), &body)
            .await?;
        http.push(t.elapsed());
        anyhow::ensure!(status == 201, "API answered {status}");
    }
    let mut sorted = anchor.clone();
    sorted.sort();
    let anchor_p50 = percentile(&sorted, 0.5);

    println!("| measurement | requests | p50 ms | p99 ms | p50 / anchor | p99 / anchor |");
    println!("|---|---|---|---|---|---|");
    println!(
        "{}",
        summary(
            "anchor: one DynamoDB PutItem round trip",
            anchor,
            anchor_p50
        )
    );
    println!(
        "{}",
        summary(
            "upload handler (presign PUT + POST + row write)",
            inside,
            anchor_p50
        )
    );
    println!(
        "{}",
        summary(
            "POST /api/images/upload through the emulator (HTTP)",
            http,
            anchor_p50
        )
    );
    Ok(())
}
