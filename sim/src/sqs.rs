//! SQS as the pipeline meets it, in memory: standard queues with visibility timeouts, receive
//! counts, a redrive policy (a message received `max_receives` times moves to the DLQ on its next
//! receive), delays, receipt handles (only the latest one changes visibility; any one deletes),
//! at-least-once delivery (a message may be received again while in flight), and short polls that
//! sample only some of the visible messages (AWS's short polling asks a subset of its servers).

use std::collections::BTreeMap;

use safelight::ports::{DeadLetter, QueueDepth};
use safelight::processing::Message;
use safelight::{Stage, Timestamp};

use crate::rng::Rng;

/// The processing queues' visibility timeout (the template's 180 s).
pub const VISIBILITY_MS: i64 = 180_000;
/// The redrive policy's `maxReceiveCount`.
pub const MAX_RECEIVES: u32 = safelight::retry::MAX_RECEIVES;

/// One message as SQS holds it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Message id (kept when redriven to the DLQ).
    pub id: String,
    /// Body.
    pub body: String,
    /// Receives so far.
    pub receive_count: u32,
    /// Not receivable before this (virtual ms).
    pub visible_at: i64,
    /// Every receipt handle issued (any one deletes the message).
    pub receipts: Vec<String>,
    /// The `safelight-deferred-since` attribute.
    pub deferred_since: Option<Timestamp>,
    /// When it was sent (ms).
    pub sent_at: i64,
}

/// One queue.
#[derive(Debug, Default, Clone)]
pub struct Queue {
    /// Messages by sequence (send order).
    pub messages: BTreeMap<u64, Stored>,
}

impl Queue {
    /// Whether it holds nothing at all (visible, in flight or delayed).
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The earliest moment a message becomes receivable.
    pub fn next_visible(&self) -> Option<i64> {
        self.messages.values().map(|m| m.visible_at).min()
    }

    fn seq_of_receipt(&self, receipt: &str) -> Option<u64> {
        self.messages
            .iter()
            .find(|(_, m)| m.receipts.iter().any(|r| r == receipt))
            .map(|(s, _)| *s)
    }

    fn depth(&self, now: i64) -> QueueDepth {
        let mut d = QueueDepth::default();
        for m in self.messages.values() {
            if m.visible_at <= now {
                d.visible += 1;
            } else if m.receive_count == 0 {
                d.delayed += 1;
            } else {
                d.in_flight += 1;
            }
        }
        d
    }
}

/// Both stages' queues and DLQs.
#[derive(Debug, Default, Clone)]
pub struct Queues {
    main: [Queue; 2],
    dead: [Queue; 2],
    next: u64,
}

fn ix(stage: Stage) -> usize {
    match stage {
        Stage::Thumbnail => 0,
        Stage::Variant => 1,
    }
}

impl Queues {
    /// The stage's processing queue.
    pub fn main(&self, stage: Stage) -> &Queue {
        &self.main[ix(stage)]
    }

    /// The stage's DLQ.
    pub fn dead(&self, stage: Stage) -> &Queue {
        &self.dead[ix(stage)]
    }

    fn next_seq(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// `SendMessage` to the stage's queue.
    pub fn send(
        &mut self,
        stage: Stage,
        body: &str,
        delay_ms: i64,
        now: i64,
        deferred_since: Option<Timestamp>,
    ) -> String {
        let seq = self.next_seq();
        let id = format!("msg-{seq}");
        self.main[ix(stage)].messages.insert(
            seq,
            Stored {
                id: id.clone(),
                body: body.to_owned(),
                receive_count: 0,
                visible_at: now + delay_ms.clamp(0, 900_000),
                receipts: Vec::new(),
                deferred_since,
                sent_at: now,
            },
        );
        id
    }

    /// What the event source mapping's `ReceiveMessage` returns: up to `max` visible messages
    /// in a random order (a message already received `MAX_RECEIVES` times moves to the DLQ
    /// instead), plus, with probability `duplicate`, a message still in flight (at-least-once).
    pub fn receive(
        &mut self,
        stage: Stage,
        max: usize,
        now: i64,
        duplicate: f64,
        rng: &mut Rng,
    ) -> Vec<Message> {
        let q = ix(stage);
        let mut visible: Vec<u64> = self.main[q]
            .messages
            .iter()
            .filter(|(_, m)| m.visible_at <= now)
            .map(|(s, _)| *s)
            .collect();
        // Shuffle: a standard queue promises no order.
        for i in (1..visible.len()).rev() {
            let j = rng.pick(i + 1);
            visible.swap(i, j);
        }
        let mut chosen = Vec::new();
        for seq in visible {
            if chosen.len() >= max {
                break;
            }
            let receives = self.main[q].messages[&seq].receive_count;
            if receives >= MAX_RECEIVES {
                if let Some(m) = self.main[q].messages.remove(&seq) {
                    let dseq = self.next_seq();
                    self.dead[q].messages.insert(
                        dseq,
                        Stored {
                            visible_at: now,
                            receipts: Vec::new(),
                            receive_count: 0,
                            ..m
                        },
                    );
                }
                continue;
            }
            chosen.push(seq);
        }
        if chosen.len() < max && rng.chance(duplicate) {
            let in_flight: Vec<u64> = self.main[q]
                .messages
                .iter()
                .filter(|(_, m)| m.visible_at > now && m.receive_count > 0)
                .map(|(s, _)| *s)
                .collect();
            if !in_flight.is_empty() {
                chosen.push(in_flight[rng.pick(in_flight.len())]);
            }
        }
        chosen
            .into_iter()
            .map(|seq| {
                let receipt = format!("rh-{}", rng.next_u64());
                let Some(m) = self.main[q].messages.get_mut(&seq) else {
                    unreachable!("chosen from the queue")
                };
                m.receive_count += 1;
                m.visible_at = now + VISIBILITY_MS;
                m.receipts.push(receipt.clone());
                Message {
                    message_id: m.id.clone(),
                    receipt_handle: receipt,
                    body: m.body.clone(),
                    receive_count: m.receive_count,
                    deferred_since: m.deferred_since,
                }
            })
            .collect()
    }

    /// `DeleteMessage` (what the event source mapping does for each message not reported failed).
    pub fn delete(&mut self, stage: Stage, receipt: &str) {
        let q = &mut self.main[ix(stage)];
        if let Some(seq) = q.seq_of_receipt(receipt) {
            q.messages.remove(&seq);
        }
    }

    /// `ChangeMessageVisibility`: only with the latest receipt of a message still in flight.
    pub fn change_visibility(
        &mut self,
        stage: Stage,
        receipt: &str,
        delay_ms: i64,
        now: i64,
    ) -> Result<(), String> {
        let q = &mut self.main[ix(stage)];
        let Some(seq) = q.seq_of_receipt(receipt) else {
            return Err("ReceiptHandleIsInvalid".into());
        };
        let Some(m) = q.messages.get_mut(&seq) else {
            return Err("ReceiptHandleIsInvalid".into());
        };
        if m.receipts.last().map(String::as_str) != Some(receipt) || m.visible_at <= now {
            return Err("MessageNotInflight".into());
        }
        m.visible_at = now + delay_ms.clamp(0, 43_200_000);
        Ok(())
    }

    /// Queue depth as `GetQueueAttributes` reports it.
    pub fn depth(&self, stage: Stage, dead: bool, now: i64) -> QueueDepth {
        if dead {
            self.dead[ix(stage)].depth(now)
        } else {
            self.main[ix(stage)].depth(now)
        }
    }

    /// `ReceiveMessage` on a DLQ: a long poll (`long`) returns up to `max` visible letters, a
    /// short poll only those on the servers it happened to ask (each with probability 1/2).
    pub fn receive_dead(
        &mut self,
        stage: Stage,
        max: usize,
        hide_ms: i64,
        long: bool,
        now: i64,
        rng: &mut Rng,
    ) -> Vec<DeadLetter> {
        let q = &mut self.dead[ix(stage)];
        let visible: Vec<u64> = q
            .messages
            .iter()
            .filter(|(_, m)| m.visible_at <= now)
            .map(|(s, _)| *s)
            .collect();
        let mut out = Vec::new();
        for seq in visible {
            if out.len() >= max {
                break;
            }
            if !long && !rng.chance(0.5) {
                continue;
            }
            let receipt = format!("dl-{}", rng.next_u64());
            let Some(m) = q.messages.get_mut(&seq) else {
                continue;
            };
            m.receive_count += 1;
            m.visible_at = now + hide_ms;
            m.receipts.push(receipt.clone());
            out.push(DeadLetter {
                message_id: m.id.clone(),
                receipt_handle: receipt,
                body: m.body.clone(),
            });
        }
        out
    }

    /// `DeleteMessage` on a DLQ.
    pub fn delete_dead(&mut self, stage: Stage, receipt: &str) {
        let q = &mut self.dead[ix(stage)];
        if let Some(seq) = q.seq_of_receipt(receipt) {
            q.messages.remove(&seq);
        }
    }

    /// `ChangeMessageVisibility` on a DLQ letter.
    pub fn release_dead(
        &mut self,
        stage: Stage,
        receipt: &str,
        after_ms: i64,
        now: i64,
    ) -> Result<(), String> {
        let q = &mut self.dead[ix(stage)];
        let Some(seq) = q.seq_of_receipt(receipt) else {
            return Err("ReceiptHandleIsInvalid".into());
        };
        let Some(m) = q.messages.get_mut(&seq) else {
            return Err("ReceiptHandleIsInvalid".into());
        };
        if m.receipts.last().map(String::as_str) != Some(receipt) {
            return Err("MessageNotInflight".into());
        }
        m.visible_at = now + after_ms;
        Ok(())
    }
}
