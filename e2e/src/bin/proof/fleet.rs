//! WebSocket clients that stay connected through a scenario and record every frame with its
//! arrival time, so notices can be timed, counted and checked for duplicates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use safelight_e2e::Stack;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// One notice as a client saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Which connection (index in the fleet).
    pub conn: usize,
    /// `image_id` of the notice.
    pub image_id: String,
    /// Its `type`.
    pub kind: String,
    /// Its `seq`.
    pub seq: u64,
    /// When it arrived.
    pub at: Instant,
    /// Whether it came from a `resume` replay rather than live.
    pub replayed: bool,
}

/// The connections of a scenario.
#[derive(Debug)]
pub struct Fleet {
    seen: Arc<Mutex<Vec<Seen>>>,
    senders: Vec<mpsc::UnboundedSender<String>>,
    /// Owner index of each connection.
    pub owners: Vec<usize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    resumed: Arc<Mutex<HashMap<usize, Instant>>>,
}

impl Fleet {
    /// Opens `per_owner` connections for each token (owner index = position in `tokens`).
    pub async fn open(stack: &Stack, tokens: &[String], per_owner: usize) -> Result<Fleet> {
        let base = stack.var("SAFELIGHT_WS_URL")?.to_owned();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let resumed = Arc::new(Mutex::new(HashMap::new()));
        let mut fleet = Fleet {
            seen: seen.clone(),
            senders: Vec::new(),
            owners: Vec::new(),
            tasks: Vec::new(),
            resumed: resumed.clone(),
        };
        let mut conn = 0;
        for (owner, token) in tokens.iter().enumerate() {
            for _ in 0..per_owner {
                let url = format!("{base}?token={token}");
                let mut attempt = 0;
                let stream = loop {
                    match tokio_tungstenite::connect_async(url.as_str()).await {
                        Ok((s, _)) => break s,
                        Err(e) if attempt < 5 => {
                            attempt += 1;
                            tracing_log(&format!("connect {conn} failed ({e}); retrying"));
                            tokio::time::sleep(Duration::from_millis(300 * attempt)).await;
                        }
                        Err(e) => return Err(e).context("WebSocket connect"),
                    }
                };
                let (mut sink, mut source) = stream.split();
                let (tx, mut rx) = mpsc::unbounded_channel::<String>();
                let seen = seen.clone();
                let resumed = resumed.clone();
                let index = conn;
                fleet.tasks.push(tokio::spawn(async move {
                    let mut replaying = false;
                    loop {
                        tokio::select! {
                            out = rx.recv() => match out {
                                Some(text) => {
                                    if text.contains("\"resume\"") { replaying = true; }
                                    if sink.send(Message::Text(text.into())).await.is_err() { break; }
                                }
                                None => { let _ = sink.close().await; break; }
                            },
                            frame = source.next() => match frame {
                                Some(Ok(Message::Text(text))) => {
                                    let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                                    let kind = v["type"].as_str().unwrap_or_default().to_owned();
                                    if kind == "resumed" {
                                        replaying = false;
                                        if let Ok(mut r) = resumed.lock() { r.insert(index, Instant::now()); }
                                        continue;
                                    }
                                    if !kind.starts_with("image:") { continue; }
                                    if let Ok(mut s) = seen.lock() {
                                        s.push(Seen {
                                            conn: index,
                                            image_id: v["image_id"].as_str().unwrap_or_default().to_owned(),
                                            kind, seq: v["seq"].as_u64().unwrap_or(0),
                                            at: Instant::now(), replayed: replaying,
                                        });
                                    }
                                }
                                Some(Ok(_)) => {}
                                Some(Err(_)) | None => break,
                            }
                        }
                    }
                }));
                fleet.senders.push(tx);
                fleet.owners.push(owner);
                conn += 1;
            }
        }
        Ok(fleet)
    }

    /// Everything seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Connections whose reader has ended (closed by the server or failed).
    pub fn closed(&self) -> usize {
        self.tasks.iter().filter(|t| t.is_finished()).count()
    }

    /// Asks every connection to replay what it missed (`resume` from its highest live seq) and
    /// waits for every `resumed` answer, asking again (as a client does) where none came.
    pub async fn resume_all(&self, wait: Duration) -> Result<()> {
        let started = Instant::now();
        let deadline = started + wait;
        loop {
            let answered: Vec<usize> = self
                .resumed
                .lock()
                .map(|r| {
                    r.iter()
                        .filter(|(_, t)| **t >= started)
                        .map(|(c, _)| *c)
                        .collect()
                })
                .unwrap_or_default();
            let seen = self.seen();
            let mut asked = 0;
            for (conn, tx) in self.senders.iter().enumerate() {
                if answered.contains(&conn) || self.tasks[conn].is_finished() {
                    continue;
                }
                let since = seen
                    .iter()
                    .filter(|s| s.conn == conn && !s.replayed)
                    .map(|s| s.seq)
                    .max()
                    .unwrap_or(0);
                let _ = tx.send(json!({"action": "resume", "since": since}).to_string());
                asked += 1;
            }
            if asked == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{asked} of {} connections never answered resume",
                    self.senders.len()
                );
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }

    /// Closes every connection.
    pub async fn close(self) {
        drop(self.senders);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

fn tracing_log(msg: &str) {
    eprintln!("[proof] {msg}");
}
