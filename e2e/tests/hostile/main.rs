//! The hostile suite: what an attacker or a broken client can send, against the deployed local
//! stack, each case asserting the specific refusal or terminal state (and, where a refusal could
//! pass vacuously, a positive control showing the same request shape is accepted when honest).
//!
//! - `presigned`: presigned uploads misused (bigger body, other type, expired, another key, reuse
//!   after `complete`, a smaller body through the POST form) and path tricks in file names;
//! - `tokens`: forged, expired, other-audience, other-issuer, tampered, `alg: none` and
//!   HS256-with-the-public-key tokens on the HTTP API, the WebSocket handshake and `$connect`;
//! - `probing`: another user's ids, cursors, retry and replay log; non-admins on admin routes;
//! - `inputs`: oversized and malformed JSON to every route, malformed WebSocket frames;
//! - `events`: malformed events invoked straight into every function (the Lambda API);
//! - `corpus`: the engine's bomb and corrupt files through the whole pipeline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod corpus;
mod events;
mod inputs;
mod presigned;
mod probing;
#[path = "../live/socket.rs"]
#[allow(dead_code)] // shared with the live suite; this suite uses part of it
mod socket;
mod tokens;

use std::time::Duration;

use anyhow::Result;
use safelight_e2e::Stack;
use serde_json::Value;

/// How long a pipeline case waits for a terminal state.
pub const SETTLE: Duration = Duration::from_secs(90);

/// A fixture of the engine's regression corpus.
pub use testkit::corpus as fixture;
pub use testkit::{settled, terminal};

/// The `error.code` of an error answer.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// Asks for a presigned upload; asserts 201 and returns the answer.
pub async fn presign(
    stack: &Stack,
    token: &str,
    filename: &str,
    content_type: &str,
    size: usize,
) -> Result<Value> {
    let (status, body) = stack.presign(token, filename, content_type, size).await?;
    assert_eq!(status, 201, "presign {filename:?}: {body}");
    Ok(body)
}

/// An S3 error document's `<Code>` and `<Message>`.
pub fn s3_error(xml: &str) -> (String, String) {
    let tag = |name: &str| {
        xml.split(&format!("<{name}>"))
            .nth(1)
            .and_then(|rest| rest.split(&format!("</{name}>")).next())
            .unwrap_or_default()
            .to_owned()
    };
    (tag("Code"), tag("Message"))
}
