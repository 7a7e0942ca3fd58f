//! The scale model: what one image costs, measured on this build, turned into cost per million
//! uploads and the concurrency AWS would need for 100 uploads/s, and what limits first at 10x
//! and 100x that rate.
//!
//! Timings: each function invoked directly (the Lambda API) with one image at a time, the event
//! source turned off so nothing else runs, minus the median of empty invocations (the emulator's
//! own overhead). Requests: every AWS API operation the functions made for a handful of images,
//! from their own `AwsCalls` metric (EMF, per service and operation; every SDK operation is
//! counted by the functions' telemetry), and the breaker row's reads from `BreakerReads`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Value};

use crate::client::{percentile, upload, Path, Retries};
use crate::report::{Check, Section};
use crate::stack::{settled, Ctx};

/// List prices used (us-east-1, on demand, no free tier): change them here.
mod price {
    /// Lambda arm64, per GB-second.
    pub const LAMBDA_GB_S: f64 = 0.000_013_333_4;
    /// Lambda, per request.
    pub const LAMBDA_REQ: f64 = 0.20 / 1e6;
    /// S3 PUT/POST/LIST, per request.
    pub const S3_PUT: f64 = 0.005 / 1e3;
    /// S3 GET/HEAD, per request.
    pub const S3_GET: f64 = 0.0004 / 1e3;
    /// DynamoDB on-demand write request unit.
    pub const DDB_WRU: f64 = 0.625 / 1e6;
    /// DynamoDB on-demand read request unit.
    pub const DDB_RRU: f64 = 0.125 / 1e6;
    /// SQS standard, per request.
    pub const SQS: f64 = 0.40 / 1e6;
    /// API Gateway HTTP API, per request.
    pub const HTTP_API: f64 = 1.00 / 1e6;
    /// API Gateway WebSocket, per message.
    pub const WS_MSG: f64 = 1.00 / 1e6;
}

/// The functions whose calls an image causes (the HTTP API's own reads by the driver, the
/// WebSocket connect and resume are not per image).
pub const COUNTED: [&str; 4] = [
    "SAFELIGHT_UPLOAD_FUNCTION",
    "SAFELIGHT_THUMBNAIL_FUNCTION",
    "SAFELIGHT_VARIANT_FUNCTION",
    "SAFELIGHT_NOTIFY_FUNCTION",
];
/// Images per size class for the timings.
const PER_CLASS: usize = 3;

fn sqs_batch(body: &str) -> Value {
    json!({"Records": [{
        "messageId": ulid::Ulid::new().to_string(), "receiptHandle": "scale", "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795870800000",
                       "SenderId": "x", "ApproximateFirstReceiveTimestamp": "1795870800000"},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:scale", "awsRegion": "us-east-1"
    }]})
}

async fn timed(ctx: &Ctx, function: &str, event: &Value) -> Result<f64> {
    let t = Instant::now();
    let out = ctx
        .stack
        .invoke(function, event.to_string().as_bytes())
        .await?;
    anyhow::ensure!(
        out.function_error.is_none(),
        "{function}: {:?}",
        out.payload
    );
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

/// Runs the scenario.
#[allow(clippy::too_many_lines)] // one model, read top to bottom
pub async fn run(ctx: &Ctx, _before: &[Section]) -> Result<Section> {
    let sub = format!("proof-scale-{}", ctx.run);
    let token = ctx.token(&sub).await?;
    let retries = Retries::default();
    let mut s = Section::new("scale", "Scale model: cost per image, concurrency, limits");

    // ---- requests per image: the functions' own AwsCalls metric, summed
    let fleet = crate::fleet::Fleet::open(&ctx.stack, std::slice::from_ref(&token), 1).await?;
    let mark = ctx.log_mark();
    let sample: Vec<_> = ctx
        .photos
        .iter()
        .filter(|p| (1280..=2560).contains(&p.class))
        .take(6)
        .cloned()
        .collect();
    let counted = sample.len();
    for (i, p) in sample.iter().enumerate() {
        let path = if i % 2 == 0 { Path::Put } else { Path::Direct };
        let id = upload(&ctx.stack, &token, &p.name, &p.bytes, path, &retries)
            .await?
            .image_id;
        ctx.stack
            .wait_status(&token, &id, Duration::from_secs(60), settled)
            .await?;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    fleet.close().await;
    let docs = ctx.emf(mark, &COUNTED);
    let calls: BTreeMap<String, f64> = Ctx::emf_sum(&docs, "AwsCalls", &["Service", "Operation"])
        .into_iter()
        .map(|(k, n)| (k, n / counted as f64))
        .collect();
    let breaker_reads = Ctx::emf_sum(&docs, "BreakerReads", &[])
        .values()
        .sum::<f64>()
        / counted as f64;
    ctx.restore().await?;
    s.figure(
        "AWS calls per image (upload, thumbnail, variant, notify; their `AwsCalls` metric over 6 images one at a time, 3 presigned + 3 direct, one socket)",
        format!(
            "{:.1}: {}",
            calls.values().sum::<f64>(),
            calls
                .iter()
                .map(|(k, n)| format!("{k} {n:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    s.figure(
        "breaker row reads per image, one image at a time (`BreakerReads`)",
        format!("{breaker_reads:.1} (without the per-process cache: one per message per stage, 2 or more; under load see the burst)"),
    );

    // ---- Lambda time per image, per stage and size class, the event sources off
    for f in ["thumbnail", "variant"] {
        ctx.stack.stackctl(&["event-source", f, "off"]).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let test_event = sqs_batch(&json!({"Event": "s3:TestEvent"}).to_string());
    let mut anchor = Vec::new();
    for _ in 0..7 {
        anchor.push(timed(ctx, "SAFELIGHT_THUMBNAIL_FUNCTION", &test_event).await?);
    }
    let overhead = percentile(&anchor, 50.0);
    let mut classes: BTreeMap<u32, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let bucket = ctx.stack.var("SAFELIGHT_BUCKET")?.to_owned();
    for class in [1280, 1920, 2560, 4000] {
        let photos: Vec<_> = ctx
            .photos
            .iter()
            .filter(|p| p.class == class)
            .take(PER_CLASS)
            .cloned()
            .collect();
        for p in photos {
            let id = upload(&ctx.stack, &token, &p.name, &p.bytes, Path::Put, &retries)
                .await?
                .image_id;
            let body = json!({"version": "0", "detail-type": "Object Created", "source": "aws.s3",
                "detail": {"bucket": {"name": bucket}, "object": {"key": format!("originals/{sub}/{id}"), "size": p.bytes.len()}}})
            .to_string();
            let t = timed(ctx, "SAFELIGHT_THUMBNAIL_FUNCTION", &sqs_batch(&body)).await? - overhead;
            let v = timed(ctx, "SAFELIGHT_VARIANT_FUNCTION", &sqs_batch(&body)).await? - overhead;
            let e = classes.entry(class).or_default();
            e.0.push(t);
            e.1.push(v);
        }
    }
    for f in ["thumbnail", "variant"] {
        ctx.stack.stackctl(&["event-source", f, "on"]).await?;
    }
    // Upload (presign) and notify handler time, same method.
    let mut presign = crate::stack::sample_event("upload-presign.json")?;
    presign["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(sub);
    presign["body"] = json!(
        json!({"filename": "a.jpg", "content_type": "image/jpeg", "size": 1_000_000}).to_string()
    );
    let mut up = Vec::new();
    for _ in 0..7 {
        up.push(timed(ctx, "SAFELIGHT_UPLOAD_FUNCTION", &presign).await? - overhead);
    }
    let mut notify = Vec::new();
    for _ in 0..7 {
        let mut e = crate::stack::sample_event("notify-complete.json")?;
        e["Records"][0]["eventID"] = json!(ulid::Ulid::new().to_string());
        for img in ["NewImage", "OldImage"] {
            e["Records"][0]["dynamodb"][img]["owner_id"] = json!({"S": format!("{sub}-n")});
        }
        notify.push(timed(ctx, "SAFELIGHT_NOTIFY_FUNCTION", &e).await? - overhead);
    }
    let ms_upload = percentile(&up, 50.0).max(1.0);
    let ms_notify = percentile(&notify, 50.0).max(1.0);
    let mut table = Vec::new();
    for (class, (t, v)) in &classes {
        table.push(format!(
            "{class} px: thumbnail {:.0} ms, variant {:.0} ms",
            percentile(t, 50.0),
            percentile(v, 50.0)
        ));
    }
    s.figure(
        "Lambda time per image (median of 3 per size class, this build, the emulator's overhead of an empty invoke subtracted)",
        format!("{}; upload (presign) {ms_upload:.0} ms; notify per record {ms_notify:.0} ms; empty invoke {overhead:.0} ms", table.join("; ")),
    );

    // ---- cost per million uploads, for the seed's mix (1280-2560 px)
    let mix: Vec<(f64, f64)> = classes
        .iter()
        .filter(|(c, _)| (1280..=2560).contains(*c))
        .map(|(_, (t, v))| (percentile(t, 50.0), percentile(v, 50.0)))
        .collect();
    let ms_thumb = mix.iter().map(|m| m.0).sum::<f64>() / mix.len().max(1) as f64;
    let ms_variant = mix.iter().map(|m| m.1).sum::<f64>() / mix.len().max(1) as f64;
    // Notices per image: thumbnail_complete, variant_complete, complete -> three stream records.
    let gb_s =
        (ms_thumb + ms_variant) / 1e3 * 1.0 + ms_upload / 1e3 * 0.5 + 3.0 * ms_notify / 1e3 * 0.25;
    let per = |prefix: &str| {
        calls
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, n)| *n)
            .sum::<f64>()
    };
    let s3_put = calls
        .iter()
        .filter(|(k, _)| k.starts_with("S3.Put") || k.starts_with("S3.Post"))
        .map(|(_, n)| n)
        .sum::<f64>()
        + 0.5; // + the browser's own PUT for presigned uploads
    let s3_get = per("S3.") - (s3_put - 0.5);
    let ddb_writes = calls
        .iter()
        .filter(|(k, _)| k.contains("Put") || k.contains("Update") || k.contains("Delete"))
        .filter(|(k, _)| k.starts_with("DynamoDB"))
        .map(|(_, n)| n)
        .sum::<f64>();
    let ddb_reads = per("DynamoDB.") - ddb_writes;
    // Write units: the counted writes, weighted by the key-spread model's item sizes (image rows
    // are 1-2 KB: 2 WRU; leases, counters, claims, notices under 1 KB: 1), plus the index writes
    // DynamoDB makes (and bills) for every images-table write an index projects.
    let model = partition_model();
    let table_writes: f64 = model.iter().filter(|k| !k.index).map(|k| k.writes).sum();
    let table_wru: f64 = model
        .iter()
        .filter(|k| !k.index)
        .map(|k| k.writes * k.wcu)
        .sum();
    let index_wru: f64 = model
        .iter()
        .filter(|k| k.index && !k.migration)
        .map(|k| k.writes * k.wcu)
        .sum();
    let migration_wru: f64 = model
        .iter()
        .filter(|k| k.migration)
        .map(|k| k.writes * k.wcu)
        .sum();
    let ddb_wru = ddb_writes * table_wru / table_writes.max(1.0) + index_wru;
    let sqs = per("SQS.") + 2.0 * (1.0 + 0.2); // + the rule's SendMessage and the poller's receive/delete, batched
    let ws_msgs = per("ApiGatewayManagementApi.");
    let cost = [
        ("Lambda compute", gb_s * price::LAMBDA_GB_S * 1e6),
        (
            "Lambda requests (upload, 2 stages, 3 stream records; batch of 1: an upper bound)",
            6.0 * price::LAMBDA_REQ * 1e6,
        ),
        (
            "S3 requests",
            (s3_put * price::S3_PUT + s3_get * price::S3_GET) * 1e6,
        ),
        (
            "DynamoDB (each table write's WRU by item size, 2 for image rows of 1-2 KB and 1 for the small items, plus what the indexes replicate; 1 RRU per read)",
            (ddb_wru * price::DDB_WRU + ddb_reads * price::DDB_RRU) * 1e6,
        ),
        ("SQS", sqs * price::SQS * 1e6),
        (
            "API Gateway (1 upload request, WebSocket messages)",
            (price::HTTP_API + ws_msgs * price::WS_MSG) * 1e6,
        ),
    ];
    let total: f64 = cost.iter().map(|(_, c)| c).sum();
    s.figure(
        "cost per million uploads (us-east-1 list prices, no free tier, storage excluded)",
        format!(
            "${total:.2}: {}; while the migration release keeps the old `by_status` index, ${:.2} more",
            cost.iter()
                .map(|(k, c)| format!("{k} ${c:.2}"))
                .collect::<Vec<_>>()
                .join("; "),
            migration_wru * price::DDB_WRU * 1e6,
        ),
    );
    // Little's law: concurrency = arrival rate x time in the function.
    let rate = 100.0;
    let conc = [
        ("upload", rate * ms_upload / 1e3),
        ("thumbnail", rate * ms_thumb / 1e3),
        ("variant", rate * ms_variant / 1e3),
        ("notify", rate * 3.0 * ms_notify / 1e3),
    ];
    let conc_total: f64 = conc.iter().map(|(_, c)| c).sum();
    s.figure(
        "concurrency for 100 uploads/s (rate x measured time; x86 timings, Graviton differs)",
        format!(
            "{conc_total:.0} executions: {}",
            conc.iter()
                .map(|(k, c)| format!("{k} {c:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    // ---- where the writes land: each table's and index's busiest partition at 10x and 100x
    let counted_writes = ddb_writes;
    let modelled: f64 = model.iter().filter(|k| !k.index).map(|k| k.writes).sum();
    for (label, r) in [
        ("10x (1000 uploads/s)", rate * 10.0),
        ("100x (10,000 uploads/s)", rate * 100.0),
    ] {
        s.figure(
            &format!("busiest partition's writes at {label}, per table and index (WCU/s; DynamoDB allows 1000 per partition)"),
            model
                .iter()
                .map(|k| {
                    let wcu = k.busiest_wcu(r);
                    let flag = if wcu > PARTITION_WCU { " OVER" } else { "" };
                    let when = if k.migration {
                        " (migration release only, until `KeepLegacyStatusIndex=false`)"
                    } else {
                        ""
                    };
                    format!("{} `{}`{when}: {wcu:.0}{flag}", k.place, k.key)
                })
                .collect::<Vec<_>>()
                .join("; "),
        );
    }
    s.check(Check::holds(
        "the key-spread model accounts for every counted DynamoDB write",
        format!("{modelled:.1} modelled, {counted_writes:.1} counted per image"),
        "within 10%",
        (modelled - counted_writes).abs() <= 0.1 * counted_writes.max(1.0),
    ));
    let over: Vec<String> = [rate * 10.0, rate * 100.0]
        .iter()
        .flat_map(|r| {
            model
                .iter()
                .filter(|k| !k.migration && k.busiest_wcu(*r) > PARTITION_WCU)
                .map(move |k| format!("{} `{}` at {:.0}/s", k.place, k.key, r))
        })
        .collect();
    s.check(Check::holds(
        "partitions over DynamoDB's 1000 WCU/s at 10x and 100x (steady state: the old `by_status` dropped)",
        if over.is_empty() {
            "none".to_owned()
        } else {
            over.join(", ")
        },
        "none",
        over.is_empty(),
    ));
    // The breaker rows: each process reads its stage's row at most once per cache time (3 s)
    // while nothing changes; failures write it at the background failure rate.
    let executions_10x = conc_total * 10.0;
    let row_reads_100x = (rate * 100.0 * (ms_thumb.max(ms_variant)) / 1e3) / 3.0;
    s.figure(
        "what limits first at 10x (1000 uploads/s)",
        format!(
            "the legacy `by_status` index while it is kept (`KeepLegacyStatusIndex`, one release): its `processing` partition takes every in-flight row write (see the partition table); its sparse, sharded successor `by_status_v2` stays under the limit. Lambda concurrency (~{executions_10x:.0}) approaches the default 1000 account limit. The breaker rows are not a limit: each process reads its stage's row at most once per 3 s (~{:.0} reads/s per row), and a background failure rate of a few percent does not open them.",
            row_reads_100x / 10.0
        ),
    );
    s.figure(
        "what limits first at 100x (10,000 uploads/s)",
        format!(
            "API Gateway's default 10,000 requests/s per account and region (uploads alone, plus {:.0} WebSocket posts/s); Lambda concurrency (~{:.0}, a quota raise); S3 derivative writes of ~{:.0}/s under `thumbnails/{{ULID}}` keys, whose shared time prefix concentrates them on few partitions at first. The breaker rows: ~{row_reads_100x:.0} strongly consistent reads/s per row (under the 3000 RCU/s partition limit) and, at a 1% background failure rate, ~{:.0} conditional writes/s of failures per row (under 1000 WCU/s, with growing version conflicts).",
            rate * 100.0 * ws_msgs.max(3.0), conc_total * 100.0, rate * 100.0 * 7.0, rate * 100.0 * 0.01
        ),
    );
    s.figure(
        "what the design does about each",
        "per-function reserved and maximum concurrency, sized from the measured time per image (docs/ARCHITECTURE.md, \"Capacity\"), keeps a burst from starving the account and lets SQS absorb the backlog (messages wait, nothing is lost); the queue + DLQ + breaker make throttling a delay, not a loss; the breaker opens only when failures dominate and each process caches its row for 3 s. Built: the sparse, write-sharded status index (32 shards of `{status}#{shard}`, completed rows leave it, `KEYS_ONLY` and sorted by `status_since`, so only a status change writes it), the completed total and the per-minute throughput counters as 16-item counters. Next (ARCHITECTURE \"What limits first\"): drop `by_status` (release 2); a stage's failure list over several items if its write rate nears the partition limit; a hashed key prefix for derivatives if S3 prefix throttling appears; an API Gateway quota raise.".to_owned(),
    );
    s.check(Check::holds(
        "timings measured for every size class",
        format!("{} of 4", classes.len()),
        "4",
        classes.len() == 4,
    ));
    s.check(Check::holds(
        "AWS calls counted (S3, DynamoDB and the management API each)",
        format!(
            "{:.0} per image ({} services)",
            calls.values().sum::<f64>(),
            ["S3.", "DynamoDB.", "ApiGatewayManagementApi."]
                .iter()
                .filter(|p| per(p) > 0.0)
                .count()
        ),
        "> 0, S3 and DynamoDB and the management API",
        ["S3.", "DynamoDB.", "ApiGatewayManagementApi."]
            .iter()
            .all(|p| per(p) > 0.0),
    ));
    Ok(s)
}

/// DynamoDB's write limit per partition (WCU/s).
const PARTITION_WCU: f64 = 1000.0;
/// The most uploads per second one owner makes: the per-owner upload limit (`UploadsPerMinute`,
/// 300 by default). What an owner's partitions (their gallery index, rate counter, notice counter
/// and log) take at most.
const OWNER_RATE: f64 = 300.0 / 60.0;

/// How the writes to one key pattern spread over partitions.
#[derive(Debug, Clone, Copy)]
enum Spread {
    /// One item per image, written a few times within seconds: the busiest key takes one
    /// image's writes in a second at most, whatever the rate (DynamoDB splits partitions by
    /// load, so no partition holds more than a few such keys at their peak).
    PerImage,
    /// One partition per owner: the busiest takes one owner's rate.
    PerOwner,
    /// One partition per value of a few (`by_status`: the status; the busiest value takes this
    /// share of the writes).
    Few(f64),
    /// Spread over this many shards.
    Shards(f64),
}

/// The writes per image to one table or index, by key.
#[derive(Debug, Clone, Copy)]
struct KeyLoad {
    place: &'static str,
    key: &'static str,
    /// Writes per image (an index: its entry rewrites per image).
    writes: f64,
    /// WCU per write (1 KB each; image rows are 1-2 KB, and an `ALL` index copies them).
    wcu: f64,
    spread: Spread,
    /// An index: its writes are the table's, replicated (not counted as calls).
    index: bool,
    /// Only while the migration release keeps the old index (`KeepLegacyStatusIndex=true`):
    /// reported, billed apart and left out of the steady state's must-hold.
    migration: bool,
}

impl KeyLoad {
    fn busiest_wcu(&self, rate: f64) -> f64 {
        let per_s = match self.spread {
            Spread::PerImage => self.writes,
            Spread::PerOwner => self.writes * OWNER_RATE.min(rate),
            Spread::Few(share) => self.writes * rate * share,
            Spread::Shards(n) => self.writes * rate / n,
        };
        per_s * self.wcu
    }
}

/// Where an image's DynamoDB writes go (docs/ARCHITECTURE.md, "AWS calls per image"): the table
/// entries sum to the counted writes per image (a check), the indexes replicate the images
/// table's writes.
fn partition_model() -> Vec<KeyLoad> {
    use Spread::*;
    let row = |key, writes, spread| KeyLoad {
        place: "images",
        key,
        writes,
        wcu: 2.0,
        spread,
        index: false,
        migration: false,
    };
    let small = |place, key, writes, spread| KeyLoad {
        place,
        key,
        writes,
        wcu: 1.0,
        spread,
        index: false,
        migration: false,
    };
    let index = |place, key, writes, wcu, spread| KeyLoad {
        place,
        key,
        writes,
        wcu,
        spread,
        index: true,
        migration: false,
    };
    vec![
        // create, begin x2, pin x2 (only when the event names no version, as locally), complete x2
        row("image_id", 7.0, PerImage),
        index("images.by_owner", "owner_id", 7.0, 2.0, PerOwner),
        // the legacy index, kept for one release (KeepLegacyStatusIndex): the `processing`
        // value takes every write but the create and the last completion
        KeyLoad {
            migration: true,
            ..index(
                "images.by_status",
                "processing_status",
                7.0,
                2.0,
                Few(5.0 / 7.0),
            )
        },
        // its sparse, sharded successor, KEYS_ONLY and sorted by `status_since`: only a status
        // change writes it (created pending: a put; to processing: a delete and a put;
        // completed: a delete), 4 key-sized writes per image; the busiest keys (`pending#n`,
        // `processing#n`) take 2 of them each, over the shards of the hash of the image id:
        // 4 writes over 2 x SHARDS keys
        index(
            "images.by_status_v2",
            "{status}#{shard}",
            4.0,
            1.0,
            Shards(2.0 * safelight::status_index::SHARDS as f64),
        ),
        small("control", "lease#{stage}#{image}", 2.0, PerImage),
        small("control", "digest#{owner}#{sha256}", 1.0, PerImage),
        // the completed total, ADDed with the throughput count
        small(
            "control",
            "completed#{shard}",
            1.0,
            Shards(safelight::aws::control::COMPLETED_SHARDS as f64),
        ),
        // the per-owner upload rate window (one per upload request)
        small("control", "rate#upload#{owner}#{minute}", 1.0, PerOwner),
        small(
            "control",
            "throughput#{minute}#{shard}",
            1.0,
            Shards(f64::from(safelight::aws::control::THROUGHPUT_SHARDS)),
        ),
        small("notices", "{owner} counter", 3.0, PerOwner),
        small("notices", "{owner}#{seq} log", 3.0, PerOwner),
        small("notices", "delivery#{event}#{type}", 3.0, PerImage),
    ]
}
