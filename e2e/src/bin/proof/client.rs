//! A browser-like uploader: asks for an upload, sends the file by the chosen path, retries what
//! the API answers as temporarily unavailable (503) the way a client library would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use safelight_e2e::Stack;
use serde_json::{json, Value};

/// How a file reaches storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// `POST /api/images/upload` with the bytes (≤ 4 MiB).
    Direct,
    /// Presigned PUT.
    Put,
    /// Presigned POST form.
    Form,
}

impl Path {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Put => "presigned PUT",
            Path::Form => "POST form",
        }
    }
}

/// One finished upload.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// The image id.
    pub image_id: String,
    /// From the first request to storage's answer.
    pub latency: Duration,
    /// When storage answered.
    pub done: Instant,
    /// The path used.
    pub path: Path,
    /// Answers of this upload that the client retried (injected 503s).
    pub retried: u32,
}

/// Counts of answers that were retried.
#[derive(Debug, Default)]
pub struct Retries {
    /// 503 / 5xx answers from the API or storage that the client retried.
    pub retried: AtomicUsize,
}

const ATTEMPTS: u32 = 6;

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(100 * 2u64.pow(attempt.min(5)))).await;
}

/// Uploads `bytes` (a JPEG) by `path`; returns the image id and timings.
pub async fn upload(
    stack: &Stack,
    token: &str,
    name: &str,
    bytes: &[u8],
    path: Path,
    retries: &Retries,
) -> Result<Uploaded> {
    let start = Instant::now();
    let api = stack.api("/api/images/upload")?;
    // The corpus repeats its photos; the same bytes twice from one owner would be one image
    // (exact duplicates). A retry of this upload sends these very bytes again.
    let stamped = stamp(bytes, name);
    let bytes = stamped.as_slice();
    for attempt in 0..ATTEMPTS {
        let result = match path {
            Path::Direct => {
                let resp = stack
                    .http()
                    .post(&api)
                    .bearer_auth(token)
                    .header("content-type", "image/jpeg")
                    .header("x-filename", name)
                    .body(bytes.to_vec())
                    .send()
                    .await?;
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                match status {
                    202 => Ok(body["image_id"].as_str().unwrap_or_default().to_owned()),
                    // A retry after an answer that was lost: the first attempt made the image.
                    200 if body["duplicate_of"].is_string() => {
                        Ok(body["duplicate_of"].as_str().unwrap_or_default().to_owned())
                    }
                    s if s >= 500 => Err(None),
                    s => Err(Some(anyhow!("direct upload answered {s}: {body}"))),
                }
            }
            Path::Put | Path::Form => presigned(stack, token, name, bytes, path).await?,
        };
        match result {
            Ok(image_id) => {
                return Ok(Uploaded {
                    image_id,
                    latency: start.elapsed(),
                    done: Instant::now(),
                    path,
                    retried: attempt,
                })
            }
            Err(Some(e)) => return Err(e),
            Err(None) => {
                retries.retried.fetch_add(1, Ordering::Relaxed);
                backoff(attempt).await;
            }
        }
    }
    bail!("{name}: still unavailable after {ATTEMPTS} attempts")
}

/// `Ok(id)`, `Err(None)` for a retryable answer, `Err(Some(e))` for a refusal.
async fn presigned(
    stack: &Stack,
    token: &str,
    name: &str,
    bytes: &[u8],
    path: Path,
) -> Result<std::result::Result<String, Option<anyhow::Error>>> {
    let (status, body) = stack
        .post_json(
            "/api/images/upload",
            Some(token),
            &json!({"filename": name, "content_type": "image/jpeg", "size": bytes.len()}),
        )
        .await?;
    if status >= 500 {
        return Ok(Err(None));
    }
    if status != 201 {
        return Ok(Err(Some(anyhow!("presign answered {status}: {body}"))));
    }
    let id = body["image_id"].as_str().unwrap_or_default().to_owned();
    // Storage itself is not faulted; a failure here is a real failure.
    let status = match path {
        Path::Put => stack.put_presigned(&body["upload"], bytes.to_vec()).await?,
        _ => {
            let post = &body["upload_post"];
            let mut form = reqwest::multipart::Form::new();
            for (k, v) in post["fields"].as_object().into_iter().flatten() {
                form = form.text(k.clone(), v.as_str().unwrap_or_default().to_owned());
            }
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_owned()),
            );
            stack
                .http()
                .post(post["url"].as_str().unwrap_or_default())
                .multipart(form)
                .send()
                .await?
                .status()
                .as_u16()
        }
    };
    if (200..300).contains(&status) {
        Ok(Ok(id))
    } else {
        Ok(Err(Some(anyhow!("storage answered {status} for {name}"))))
    }
}

/// The `p`-th percentile (0-100) of `values` (nearest rank), in the values' unit.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

/// `bytes` made unique to `name`: a JPEG gets a comment segment (`FF FE`) naming it right after
/// its start-of-image marker (it decodes the same); anything else is sent as it is.
fn stamp(bytes: &[u8], name: &str) -> Vec<u8> {
    let Some(rest) = bytes.strip_prefix(&[0xFF, 0xD8]) else {
        return bytes.to_vec();
    };
    let text = format!("safelight-proof {name}");
    let len = u16::try_from(text.len() + 2).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(bytes.len() + text.len() + 4);
    out.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xFE]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(rest);
    out
}
