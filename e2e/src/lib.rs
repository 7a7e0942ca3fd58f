//! Helpers for the integration suites: the deployed local stack's coordinates (from
//! `.local/stack.env`, written by `make dev`), tokens from the local issuer, SDK clients and HTTP.
//!
//! The same suites can run against real AWS: leave `AWS_ENDPOINT_URL` out of the env file and
//! give the stack outputs and a token URL.

pub mod jwt;
pub mod lambda;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// The deployed stack.
#[derive(Debug, Clone)]
pub struct Stack {
    vars: HashMap<String, String>,
    /// SDK configuration pointed at the stack.
    pub sdk: aws_config::SdkConfig,
    http: reqwest::Client,
}

fn env_file() -> PathBuf {
    std::env::var_os("SAFELIGHT_STACK_ENV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.local/stack.env"),
        PathBuf::from,
    )
}

impl Stack {
    /// Reads the stack's env file; fails with a hint when the stack is not up.
    pub async fn load() -> Result<Stack> {
        let path = env_file();
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{} is missing: run `make dev` (or `make test`) first",
                path.display()
            )
        })?;
        let vars = safelight::aws::stack_env::parse(&text);
        let sdk = safelight::aws::stack_env::sdk_config(&vars).await;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Stack { vars, sdk, http })
    }

    /// A value of the env file, e.g. `SAFELIGHT_API_URL`.
    pub fn var(&self, name: &str) -> Result<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("{name} is not in the stack env file"))
    }

    /// The HTTP API's base URL.
    pub fn api(&self, path: &str) -> Result<String> {
        Ok(format!(
            "{}{path}",
            self.var("SAFELIGHT_API_URL")?.trim_end_matches('/')
        ))
    }

    /// A plain HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// An S3 client (path style when pointed at the emulator).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let mut b = aws_sdk_s3::config::Builder::from(&self.sdk);
        if self.sdk.endpoint_url().is_some() {
            b = b.force_path_style(true);
        }
        aws_sdk_s3::Client::from_conf(b.build())
    }

    /// A DynamoDB client.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    /// Messages a queue holds in any state (visible, in flight, delayed), by its stack variable.
    pub async fn queue_depth(&self, queue_var: &str) -> Result<u64> {
        self.queue_depth_at(self.var(queue_var)?).await
    }

    /// Messages the queue at `url` holds in any state (visible, in flight, delayed).
    pub async fn queue_depth_at(&self, url: &str) -> Result<u64> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let attrs = self
            .sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await?
            .attributes
            .unwrap_or_default();
        Ok(attrs.values().filter_map(|v| v.parse::<u64>().ok()).sum())
    }

    /// An SQS client.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    /// Runs `infra/local/stackctl.py` with `args` against this stack (local stacks only: it
    /// drives the emulator with boto3 from the project venv). Returns what it printed.
    pub async fn stackctl(&self, args: &[&str]) -> Result<String> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut cmd = std::process::Command::new(root.join(".venv/bin/python"));
        cmd.arg(root.join("infra/local/stackctl.py")).args(args);
        for name in [
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            cmd.env(name, self.var(name)?);
        }
        cmd.env("STACK_NAME", self.var("SAFELIGHT_STACK_NAME")?);
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await?
            .context("running stackctl.py")?;
        if !out.status.success() {
            bail!(
                "stackctl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Sets (or with `""` clears) `SAFELIGHT_FAULTS` of a deployed function, e.g.
    /// `("SAFELIGHT_THUMBNAIL_FUNCTION", "s3_get@originals/t-x/:1")`. The emulator recycles the
    /// function's processes, in-flight ones included: only suites whose tests take turns use it.
    pub async fn set_faults(&self, function_var: &str, spec: &str) -> Result<()> {
        let function = self.var(function_var)?.to_owned();
        self.stackctl(&["set-env", &function, "SAFELIGHT_FAULTS", spec])
            .await?;
        Ok(())
    }

    /// A token from the local issuer; `query` is e.g. `sub=u1`, `user=admin`, `sub=u1&ttl=-60`.
    pub async fn token(&self, query: &str) -> Result<String> {
        let url = format!("{}?{query}", self.var("SAFELIGHT_TOKEN_URL")?);
        let resp = self.http.get(&url).send().await?;
        if !resp.status().is_success() {
            bail!("token endpoint answered {}", resp.status());
        }
        Ok(resp.text().await?.trim().to_owned())
    }

    /// A token for a fresh, unique user (tests never share owners).
    pub async fn fresh_user(&self) -> Result<(String, String)> {
        let sub = format!("t-{}", ulid::Ulid::new().to_string().to_lowercase());
        let token = self.token(&format!("sub={sub}")).await?;
        Ok((sub, token))
    }

    /// Sends a request with an optional bearer token; returns status and JSON body (Null when
    /// the body is not JSON).
    async fn call(
        &self,
        req: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> Result<(u16, Value)> {
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await?;
        Ok((
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        ))
    }

    /// `GET` an API path.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Result<(u16, Value)> {
        self.call(self.http.get(self.api(path)?), token).await
    }

    /// `POST` JSON to an API path.
    pub async fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Value)> {
        self.call(self.http.post(self.api(path)?).json(body), token)
            .await
    }

    /// `POST` raw bytes with a content type to an API path.
    pub async fn post_bytes(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Value)> {
        let req = self
            .http
            .post(self.api(path)?)
            .header("content-type", content_type)
            .body(body);
        self.call(req, token).await
    }

    /// Asks for a presigned upload of `size` bytes of `content_type` named `filename`; returns
    /// the status and the answer.
    pub async fn presign(
        &self,
        token: &str,
        filename: &str,
        content_type: &str,
        size: usize,
    ) -> Result<(u16, Value)> {
        self.post_json(
            "/api/images/upload",
            Some(token),
            &serde_json::json!({"filename": filename, "content_type": content_type, "size": size}),
        )
        .await
    }

    /// Asks for a presigned upload and PUTs `bytes` with the signed headers. Returns the image id.
    pub async fn upload(&self, token: &str, content_type: &str, bytes: &[u8]) -> Result<String> {
        let (status, body) = self
            .presign(token, "photo", content_type, bytes.len())
            .await?;
        if status != 201 {
            bail!("upload request answered {status}: {body}");
        }
        let put = self.put_presigned(&body["upload"], bytes.to_vec()).await?;
        if !(200..300).contains(&put) {
            bail!("presigned PUT answered {put}");
        }
        body["image_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no image_id in {body}"))
    }

    /// Sends a presigned PUT as the browser would: the URL and exactly the signed headers.
    pub async fn put_presigned(&self, upload: &Value, body: Vec<u8>) -> Result<u16> {
        let url = upload["url"]
            .as_str()
            .ok_or_else(|| anyhow!("no url in {upload}"))?;
        let mut req = self.http.put(url).body(body);
        for (k, v) in upload["headers"].as_object().into_iter().flatten() {
            req = req.header(k, v.as_str().unwrap_or_default());
        }
        Ok(req.send().await?.status().as_u16())
    }

    /// Polls the processing status until `done` holds or `timeout` passes; returns the last body.
    pub async fn wait_status(
        &self,
        token: &str,
        image_id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let start = Instant::now();
        loop {
            let (status, body) = self
                .get(
                    &format!("/api/images/{image_id}/processing-status"),
                    Some(token),
                )
                .await?;
            if status == 200 && done(&body) {
                return Ok(body);
            }
            if start.elapsed() > timeout {
                bail!("timed out after {timeout:?} waiting for {image_id}; last answer {status}: {body}");
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Reads an object's bytes.
    pub async fn object(&self, key: &str) -> Result<Vec<u8>> {
        let out = self
            .s3()
            .get_object()
            .bucket(self.var("SAFELIGHT_BUCKET")?)
            .key(key)
            .send()
            .await?;
        Ok(out.body.collect().await?.into_bytes().to_vec())
    }

    /// Keys under a prefix.
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .s3()
                .list_objects_v2()
                .bucket(self.var("SAFELIGHT_BUCKET")?)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match out.next_continuation_token() {
                Some(t) => token = Some(t.to_owned()),
                None => return Ok(keys),
            }
        }
    }
}
