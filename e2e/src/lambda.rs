//! Invoking a deployed function directly with the Lambda `Invoke` API (SigV4-signed with the
//! stack's credentials), the way an event source would, to feed it events API Gateway, SQS or a
//! stream would never produce.

use std::time::SystemTime;

use anyhow::{anyhow, Context, Result};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde_json::Value;

use crate::Stack;

/// What an invocation answered.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `X-Amz-Function-Error` (`Unhandled` when the function failed), `None` on success.
    pub function_error: Option<String>,
    /// The function's answer (or its error document), parsed as JSON; `Null` when not JSON.
    pub payload: Value,
}

impl Invocation {
    /// The `errorMessage` of a failed invocation, or "".
    pub fn error_message(&self) -> &str {
        self.payload["errorMessage"].as_str().unwrap_or_default()
    }
}

impl Stack {
    /// Invokes the function named by the env var `function_var` (e.g.
    /// `SAFELIGHT_UPLOAD_FUNCTION`) synchronously with `payload`, exactly as given.
    pub async fn invoke(&self, function_var: &str, payload: &[u8]) -> Result<Invocation> {
        let function = self.var(function_var)?;
        let endpoint = self.var("AWS_ENDPOINT_URL")?.trim_end_matches('/');
        let region = self.var("AWS_REGION")?;
        let url = format!("{endpoint}/2015-03-31/functions/{function}/invocations");
        let identity = Credentials::new(
            self.var("AWS_ACCESS_KEY_ID")?,
            self.var("AWS_SECRET_ACCESS_KEY")?,
            None,
            None,
            "stack.env",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("lambda")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| anyhow!("signing parameters: {e}"))?
            .into();
        let headers = [("content-type", "application/json")];
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(payload),
        )
        .context("building the request to sign")?;
        let (instructions, _) = sign(signable, &params)
            .context("signing the invoke request")?
            .into_parts();
        let mut req = self
            .http()
            .post(&url)
            .header("content-type", "application/json")
            .body(payload.to_vec());
        for (name, value) in instructions.headers() {
            req = req.header(name, value);
        }
        let resp = req.send().await.context("invoking the function")?;
        let status = resp.status();
        let function_error = resp
            .headers()
            .get("x-amz-function-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(anyhow!(
                "Invoke {function} answered {status}: {}",
                text.chars().take(300).collect::<String>()
            ));
        }
        Ok(Invocation {
            function_error,
            payload: serde_json::from_str(&text).unwrap_or(Value::Null),
        })
    }
}
