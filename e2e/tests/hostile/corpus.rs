//! The engine's bomb and corrupt corpus (`shared/tests/fixtures`) uploaded like any photo and
//! run through the whole deployed pipeline: each ends `failed` with a readable reason of the
//! right kind, is not retried (one attempt per stage), leaves no derivative, and no processor
//! process grew past its function's memory size while handling them.

use anyhow::Result;
use futures::future::join_all;
use safelight_e2e::Stack;
use serde_json::Value;

use crate::{fixture, settled, SETTLE};

/// (file, declared type, error kinds accepted, words the reason must contain, one of).
const CORPUS: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "bomb-100000x100000.png",
        "image/png",
        &["permanent"],
        &["too large"],
    ),
    (
        "bomb-65535x65535.jpg",
        "image/jpeg",
        &["permanent"],
        &["too large"],
    ),
    (
        "bomb-65535x65535.gif",
        "image/gif",
        &["permanent"],
        &["too large"],
    ),
    (
        "bomb-16777216-squared.webp",
        "image/webp",
        &["permanent"],
        &["too large"],
    ),
    (
        "giant-frame.gif",
        "image/gif",
        &["permanent"],
        &["too large", "memory", "corrupt"],
    ),
    (
        "corrupt-scan.jpg",
        "image/jpeg",
        &["permanent"],
        &["corrupt"],
    ),
    // A frame rav1d fails to decode: once an abort of the whole process ("processing crashed"
    // on redelivery, batchmates delayed a visibility timeout), now a typed error on attempt one.
    (
        "avif-damaged-frame.avif",
        "image/avif",
        &["permanent"],
        &["corrupt"],
    ),
    (
        "header-only.jpg",
        "image/jpeg",
        &["permanent"],
        &["truncated"],
    ),
    (
        "truncated.jpg",
        "image/jpeg",
        &["permanent"],
        &["truncated"],
    ),
    ("truncated.png", "image/png", &["permanent"], &["truncated"]),
    (
        "png-behind-jpeg-magic.jpg",
        "image/jpeg",
        &["permanent", "rejected"],
        &["corrupt", "not the declared", "png"],
    ),
    (
        "not-an-image.jpg",
        "image/jpeg",
        &["rejected", "permanent"],
        &["not a recognisable image", "unsupported"],
    ),
    (
        "lossy.webp",
        "image/jpeg",
        &["rejected"],
        &["webp", "not the declared"],
    ),
];

#[tokio::test]
async fn every_bomb_and_corrupt_file_ends_failed_with_its_reason_once_and_within_memory(
) -> Result<()> {
    let stack = Stack::load().await?;
    let (_, token) = stack.fresh_user().await?;
    let mut uploads = Vec::new();
    for (file, content_type, _, _) in CORPUS {
        let id = stack.upload(&token, content_type, &fixture(file)).await?;
        uploads.push(id);
    }
    // A polyglot (script in a comment and after the image) is a real image: it completes, and
    // its payload reaches no derivative.
    let polyglot = stack
        .upload(&token, "image/jpeg", &fixture("polyglot.jpg"))
        .await?;

    let waits = uploads
        .iter()
        .chain(std::iter::once(&polyglot))
        .map(|id| stack.wait_status(&token, id, SETTLE, settled));
    let rows: Vec<Value> = join_all(waits).await.into_iter().collect::<Result<_>>()?;

    for ((file, _, kinds, words), row) in CORPUS.iter().zip(&rows) {
        assert_eq!(row["processing_status"], "failed", "{file}: {row}");
        let kind = row["error_kind"].as_str().unwrap_or_default();
        assert!(kinds.contains(&kind), "{file}: kind {kind:?} in {row}");
        let reason = row["processing_error"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        assert!(
            words.iter().any(|w| reason.contains(w)),
            "{file}: reason {reason:?} names none of {words:?}"
        );
        // Refused on its first attempt by each stage: never retried.
        assert_eq!(row["processing_attempts"], 2, "{file}: {row}");
        assert_eq!(row["thumbnails"], serde_json::json!({}), "{file}");
        assert_eq!(row["variants"], serde_json::json!({}), "{file}");
        let id = row["image_id"].as_str().unwrap();
        let mut made = stack.keys(&format!("thumbnails/{id}/")).await?;
        made.extend(stack.keys(&format!("variants/{id}/")).await?);
        assert!(made.is_empty(), "{file}: derivatives {made:?}");
    }
    let row = rows.last().unwrap();
    assert_eq!(row["processing_status"], "completed", "polyglot: {row}");
    for group in ["thumbnails", "variants"] {
        for (name, d) in row[group].as_object().unwrap() {
            let bytes = stack.object(d["key"].as_str().unwrap()).await?;
            assert!(
                !bytes.windows(7).any(|w| w == b"<script"),
                "polyglot {name} kept the payload"
            );
        }
    }

    for (function, peak_mb, limit_mb) in processor_peaks(&stack)? {
        assert!(
            peak_mb <= limit_mb,
            "{function}: a process peaked at {peak_mb} MB, over its {limit_mb} MB"
        );
    }
    Ok(())
}

/// Peak resident memory (VmHWM) of every live process of this stack's processors, with the
/// function's configured memory size. Local stacks only: the emulator runs functions as local
/// processes (without a memory limit, so this is where a limit is checked).
fn processor_peaks(stack: &Stack) -> Result<Vec<(String, u64, u64)>> {
    let names = [
        stack.var("SAFELIGHT_THUMBNAIL_FUNCTION")?.to_owned(),
        stack.var("SAFELIGHT_VARIANT_FUNCTION")?.to_owned(),
    ];
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let path = entry?.path();
        let Ok(environ) = std::fs::read(path.join("environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        let var = |name: &str| {
            vars.iter()
                .filter_map(|v| std::str::from_utf8(v).ok())
                .find_map(|v| v.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
                .map(str::to_owned)
        };
        let Some(function) = var("AWS_LAMBDA_FUNCTION_NAME") else {
            continue;
        };
        if !names.contains(&function) {
            continue;
        }
        let limit_mb: u64 = var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        let peak_kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        found.push((function, peak_kb / 1024, limit_mb));
    }
    if stack.var("AWS_ENDPOINT_URL").is_ok() {
        assert!(
            !found.is_empty(),
            "no processor process of this stack found in /proc"
        );
    }
    Ok(found)
}
