//! What the scenarios need from the local stack beyond the API: function configuration (faults,
//! breaker knobs) through `stackctl.py`, the functions' processes (to kill one mid-record), the
//! emulator's log (to count injected faults and probes, and to sum the functions' EMF metrics),
//! queue depths and the breaker rows.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use safelight_e2e::Stack;
use serde_json::Value;

use crate::Photo;

/// The processors' environment variables a scenario may change; `restore` removes them all.
pub const KNOBS: [&str; 6] = [
    "RUST_LOG",
    "AWS_LAMBDA_LOG_LEVEL",
    "SAFELIGHT_FAULTS",
    "BREAKER_THRESHOLD",
    "BREAKER_WINDOW_SECS",
    "BREAKER_COOLDOWN_SECS",
];

/// Function env-file variables of the functions a scenario configures.
pub const CONFIGURED: [&str; 5] = [
    "SAFELIGHT_WS_FUNCTION",
    "SAFELIGHT_THUMBNAIL_FUNCTION",
    "SAFELIGHT_VARIANT_FUNCTION",
    "SAFELIGHT_UPLOAD_FUNCTION",
    "SAFELIGHT_NOTIFY_FUNCTION",
];

/// The stack, the corpus and a run tag.
#[derive(Debug)]
pub struct Ctx {
    /// The deployed stack.
    pub stack: Stack,
    /// The corpus.
    pub photos: Vec<Photo>,
    /// A tag for this run's user names.
    pub run: String,
    log: PathBuf,
    /// Each configured function's knobs as deployed (absent = unset).
    deployed: HashMap<String, HashMap<String, String>>,
}

impl Ctx {
    /// Loads the stack (SAFELIGHT_STACK_ENV) and finds its log.
    pub async fn load(photos: Vec<Photo>) -> Result<Ctx> {
        let stack = Stack::load().await?;
        let env = std::env::var("SAFELIGHT_STACK_ENV").context("SAFELIGHT_STACK_ENV")?;
        let log = PathBuf::from(env)
            .parent()
            .map(|d| d.join("logs/ministack.log"))
            .context("log path")?;
        let run = ulid::Ulid::new().to_string().to_lowercase()[20..].to_owned();
        let mut deployed = HashMap::new();
        for f in CONFIGURED {
            let name = stack.var(f)?.to_owned();
            let env: HashMap<String, String> =
                serde_json::from_str(stack.stackctl(&["get-env", &name]).await?.trim())?;
            let knobs = env
                .into_iter()
                .filter(|(k, _)| KNOBS.contains(&k.as_str()))
                .collect();
            deployed.insert(f.to_owned(), knobs);
        }
        Ok(Ctx {
            stack,
            photos,
            run,
            log,
            deployed,
        })
    }

    /// Sets (or with "" removes) one variable of the function named by `function_var`.
    pub async fn set_env(&self, function_var: &str, name: &str, value: &str) -> Result<()> {
        let function = self.stack.var(function_var)?.to_owned();
        let mut args = vec!["set-env", function.as_str(), name];
        if !value.is_empty() {
            args.push(value);
        }
        self.stack.stackctl(&args).await?;
        Ok(())
    }

    /// Puts every knob a scenario may have changed back as deployed and closes the breakers.
    pub async fn restore(&self) -> Result<()> {
        for f in CONFIGURED {
            let name = self.stack.var(f)?.to_owned();
            let now: HashMap<String, String> =
                serde_json::from_str(self.stack.stackctl(&["get-env", &name]).await?.trim())?;
            let deployed = self.deployed.get(f).cloned().unwrap_or_default();
            for k in KNOBS {
                if now.get(k) != deployed.get(k) {
                    self.set_env(f, k, deployed.get(k).map_or("", String::as_str))
                        .await?;
                }
            }
        }
        self.reset_breakers().await?;
        // The emulator recycles processes on a configuration change; let it settle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    }

    /// Closes both circuits by hand through the operators' route (as an operator would).
    pub async fn reset_breakers(&self) -> Result<()> {
        let admin = self.stack.token("sub=proof-operator&admin=1").await?;
        for stage in ["thumbnail", "variant"] {
            let (code, body) = self
                .stack
                .post_json(
                    &format!("/api/admin/circuits/{stage}/reset"),
                    Some(&admin),
                    &serde_json::json!({}),
                )
                .await?;
            anyhow::ensure!(
                code < 300,
                "resetting the {stage} circuit answered {code}: {body}"
            );
        }
        Ok(())
    }

    /// The emulator log's current length (a scenario counts lines after it).
    pub fn log_mark(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// The CloudWatch EMF documents the functions named by these env-file variables wrote after
    /// `mark` (each function's documents carry its `functionName`).
    pub fn emf(&self, mark: u64, function_vars: &[&str]) -> Vec<Value> {
        let names: Vec<&str> = function_vars
            .iter()
            .filter_map(|v| self.stack.var(v).ok())
            .collect();
        self.log_lines(mark, "\"_aws\"")
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(&l[l.find('{')?..]).ok())
            .filter(|d| {
                d["functionName"]
                    .as_str()
                    .is_some_and(|f| names.contains(&f))
            })
            .collect()
    }

    /// A counter summed over EMF documents, per the value of `dimensions` joined with `.`
    /// (e.g. `AwsCalls` by `Service`, `Operation` -> `S3.GetObject`).
    pub fn emf_sum(docs: &[Value], metric: &str, dimensions: &[&str]) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for d in docs {
            let Some(n) = d[metric].as_f64() else {
                continue;
            };
            let key = dimensions
                .iter()
                .map(|k| d[*k].as_str().unwrap_or("?"))
                .collect::<Vec<_>>()
                .join(".");
            *out.entry(key).or_insert(0.0) += n;
        }
        out
    }

    /// Lines of the emulator log after `mark` that contain `needle`.
    pub fn log_lines(&self, mark: u64, needle: &str) -> Vec<String> {
        let Ok(bytes) = std::fs::read(&self.log) else {
            return Vec::new();
        };
        let start = usize::try_from(mark).unwrap_or(0).min(bytes.len());
        String::from_utf8_lossy(&bytes[start..])
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// Live processes of the functions named by these env-file variables: (pid, function var).
    pub fn processes(&self, function_vars: &[&str]) -> Vec<(u32, String)> {
        let names: HashMap<String, String> = function_vars
            .iter()
            .filter_map(|v| Some((self.stack.var(v).ok()?.to_owned(), (*v).to_owned())))
            .collect();
        let mut out = Vec::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return out;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            let found = environ
                .split(|b| *b == 0)
                .filter_map(|v| std::str::from_utf8(v).ok())
                .find_map(|v| v.strip_prefix("AWS_LAMBDA_FUNCTION_NAME="))
                .and_then(|n| names.get(n));
            if let Some(var) = found {
                out.push((pid, var.clone()));
            }
        }
        out
    }

    /// Kills a process of this stack's functions (SIGKILL: no cleanup, like an OOM kill).
    pub fn kill(&self, pid: u32) -> bool {
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// CPU time (utime + stime, clock ticks) a process has used.
    pub fn cpu_ticks(pid: u32) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let rest = s.rsplit(')').next()?.to_owned();
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0)
    }

    /// Visible + in flight + delayed messages of the queue named by an env-file variable.
    pub async fn depth(&self, queue_var: &str) -> Result<u64> {
        self.stack.queue_depth(queue_var).await
    }

    /// The queue's messages by state: (visible, in flight, delayed). In flight in a DLQ means
    /// hidden by a reader (the sweeper keeps the letters it has seen hidden until its sweep ends).
    pub async fn depth_by_state(&self, queue_var: &str) -> Result<(u64, u64, u64)> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let attrs = self
            .stack
            .sqs()
            .get_queue_attributes()
            .queue_url(self.stack.var(queue_var)?)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await?
            .attributes
            .unwrap_or_default();
        let n = |a: A| {
            attrs
                .get(&a)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok((
            n(A::ApproximateNumberOfMessages),
            n(A::ApproximateNumberOfMessagesNotVisible),
            n(A::ApproximateNumberOfMessagesDelayed),
        ))
    }

    /// Every message body in a DLQ that is not held by another reader, each once: long polls
    /// (a short poll samples some of SQS's servers and may answer empty with letters there), the
    /// letters read kept hidden until an empty long poll ends the reading, then all made visible
    /// again at once, so the reading neither stops on letters it has already seen nor hides the
    /// DLQ from anyone after it. Letters another reader holds are not read: compare with
    /// [`Ctx::depth_by_state`].
    pub async fn dlq_bodies(&self, queue_var: &str) -> Result<Vec<String>> {
        let url = self.stack.var(queue_var)?.to_owned();
        let sqs = self.stack.sqs();
        let mut bodies = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut held = Vec::new();
        let read = async {
            for _ in 0..200 {
                let out = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .visibility_timeout(120)
                    .wait_time_seconds(2)
                    .send()
                    .await?;
                let msgs = out.messages.unwrap_or_default();
                if msgs.is_empty() {
                    break;
                }
                for m in msgs {
                    held.extend(m.receipt_handle.clone());
                    if seen.insert(m.message_id.clone().unwrap_or_default()) {
                        bodies.push(m.body.unwrap_or_default());
                    }
                }
            }
            anyhow::Ok(())
        }
        .await;
        for receipt in &held {
            // Best effort: a letter not released comes back when its 120 s are up.
            let _ = sqs
                .change_message_visibility()
                .queue_url(&url)
                .receipt_handle(receipt)
                .visibility_timeout(0)
                .send()
                .await;
        }
        read?;
        Ok(bodies)
    }

    /// The circuit breaker row of a stage, as stored.
    pub async fn breaker(&self, stage: &str) -> Result<Value> {
        let out = self
            .stack
            .dynamodb()
            .get_item()
            .table_name(self.stack.var("SAFELIGHT_CONTROL_TABLE")?)
            .key("pk", AttributeValue::S(format!("circuit#{stage}")))
            .consistent_read(true)
            .send()
            .await?;
        Ok(out.item.map(|i| item_json(&i)).unwrap_or(Value::Null))
    }

    /// A token for `sub`.
    pub async fn token(&self, sub: &str) -> Result<String> {
        self.stack.token(&format!("sub={sub}")).await
    }

    /// The processing status of one image as its owner sees it.
    pub async fn status(&self, token: &str, id: &str) -> Result<Value> {
        let (code, body) = self
            .stack
            .get(&format!("/api/images/{id}/processing-status"), Some(token))
            .await?;
        Ok(if code == 200 { body } else { Value::Null })
    }

    /// Sends the S3 "Object Created" event of an original again to both queues (a duplicate
    /// delivery, as EventBridge or SQS may make).
    pub async fn duplicate_event(&self, owner: &str, id: &str) -> Result<()> {
        let event = serde_json::json!({
            "version": "0", "detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": self.stack.var("SAFELIGHT_BUCKET")?},
                       "object": {"key": format!("originals/{owner}/{id}"), "size": 1}}
        });
        for q in [
            "SAFELIGHT_THUMBNAILS_QUEUE_URL",
            "SAFELIGHT_VARIANTS_QUEUE_URL",
        ] {
            self.stack
                .sqs()
                .send_message()
                .queue_url(self.stack.var(q)?)
                .message_body(event.to_string())
                .send()
                .await?;
        }
        Ok(())
    }
}

/// Both stages ended.
pub fn settled(v: &Value) -> bool {
    ["thumbnail_status", "variant_status"]
        .iter()
        .all(|s| matches!(v[*s].as_str(), Some("completed" | "failed")))
}

fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    fn one(v: &AttributeValue) -> Value {
        match v {
            AttributeValue::S(s) => Value::from(s.clone()),
            AttributeValue::N(n) => n
                .parse::<f64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(n.clone())),
            AttributeValue::Bool(b) => Value::from(*b),
            AttributeValue::L(l) => Value::from(l.iter().map(one).collect::<Vec<_>>()),
            AttributeValue::M(m) => item_json(m),
            AttributeValue::Ns(ns) => Value::from(ns.clone()),
            AttributeValue::Ss(ss) => Value::from(ss.clone()),
            _ => Value::Null,
        }
    }
    Value::Object(item.iter().map(|(k, v)| (k.clone(), one(v))).collect())
}

/// A sample event of `events/`.
pub fn sample_event(name: &str) -> Result<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    Ok(serde_json::from_slice(
        &std::fs::read(&path).with_context(|| path.display().to_string())?,
    )?)
}
