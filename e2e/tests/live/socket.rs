//! A real WebSocket client for the live suite: connects to the stack's WebSocket API with a
//! token, reads JSON frames with timeouts, and sends actions.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::{SinkExt, StreamExt};
use safelight_e2e::Stack;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The wire names, shortened in assertions.
pub const THUMBNAIL: &str = "image:processing:thumbnail_complete";
pub const VARIANT: &str = "image:processing:variant_complete";
pub const COMPLETE: &str = "image:processing:complete";
pub const FAILED: &str = "image:processing:failed";

/// One open connection.
pub struct Socket {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Socket")
    }
}

/// The WebSocket URL with a token.
pub fn url(stack: &Stack, token: Option<&str>) -> Result<String> {
    let base = stack.var("SAFELIGHT_WS_URL")?;
    Ok(match token {
        Some(t) => format!("{base}?token={t}"),
        None => base.to_owned(),
    })
}

impl Socket {
    /// Connects with `token`; fails if the handshake is refused.
    pub async fn open(stack: &Stack, token: &str) -> Result<Socket> {
        match Self::try_open(stack, Some(token)).await? {
            Ok(socket) => Ok(socket),
            Err(status) => bail!("the WebSocket handshake was refused with {status}"),
        }
    }

    /// Connects; `Err(status)` when the server refused the handshake with an HTTP status.
    pub async fn try_open(stack: &Stack, token: Option<&str>) -> Result<Result<Socket, u16>> {
        let url = url(stack, token)?;
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((stream, _)) => Ok(Ok(Socket { stream })),
            Err(tungstenite::Error::Http(response)) => Ok(Err(response.status().as_u16())),
            Err(e) => Err(e).context("WebSocket connect failed"),
        }
    }

    /// Sends a JSON frame.
    pub async fn send(&mut self, frame: &Value) -> Result<()> {
        self.send_text(frame.to_string()).await
    }

    /// Sends a text frame exactly as given (malformed frames included).
    pub async fn send_text(&mut self, text: String) -> Result<()> {
        self.stream
            .send(Message::Text(text.into()))
            .await
            .context("sending a frame")
    }

    /// The next JSON frame, or `None` when nothing arrives within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<Value>> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(message) = tokio::time::timeout(left, self.stream.next()).await else {
                return Ok(None);
            };
            match message {
                None => bail!("the server closed the connection"),
                Some(Err(e)) => return Err(e).context("reading a frame"),
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str())
                        .map(Some)
                        .with_context(|| format!("frame is not JSON: {text}"));
                }
                Some(Ok(Message::Close(_))) => bail!("the server closed the connection"),
                // Pings are answered by tungstenite; nothing else is expected.
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Frames until one satisfies `done` (included), failing after `wait`.
    pub async fn until(
        &mut self,
        wait: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Vec<Value>> {
        let deadline = Instant::now() + wait;
        let mut frames = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await? {
                Some(frame) => {
                    let stop = done(&frame);
                    frames.push(frame);
                    if stop {
                        return Ok(frames);
                    }
                }
                None => {
                    return Err(anyhow!(
                        "nothing matching arrived within {wait:?}; got {frames:?}"
                    ))
                }
            }
        }
    }

    /// Every frame that arrives within `wait` (a quiet period to catch strays and duplicates).
    pub async fn drain(&mut self, wait: Duration) -> Result<Vec<Value>> {
        let deadline = Instant::now() + wait;
        let mut frames = Vec::new();
        while let Some(frame) = self
            .next(deadline.saturating_duration_since(Instant::now()))
            .await?
        {
            frames.push(frame);
        }
        Ok(frames)
    }

    /// Closes cleanly (the server runs `$disconnect`).
    pub async fn close(mut self) -> Result<()> {
        self.stream.close(None).await.context("closing")?;
        // Read until the close handshake completes, briefly.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = self.stream.next().await {}
        })
        .await;
        Ok(())
    }
}

/// Notices of one image, in arrival order.
pub fn of_image<'a>(frames: &'a [Value], image_id: &str) -> Vec<&'a Value> {
    frames
        .iter()
        .filter(|f| f["image_id"] == image_id)
        .collect()
}

/// The `type` of each frame.
pub fn types(frames: &[&Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f["type"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// How many frames have this type.
pub fn count(frames: &[&Value], kind: &str) -> usize {
    frames.iter().filter(|f| f["type"] == kind).count()
}
