//! The migration's records (what `ops::backfill` reads and keeps, and what the ports store):
//! a row written by an older system ([`LegacyRow`]) and the run-once marker ([`Marker`]) with
//! its state and counts.

use serde::{Deserialize, Serialize};

use super::{Derivative, Timestamp};

/// A row written by an older system, as far as it can be read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyRow {
    /// The owner it names, if any.
    #[serde(default)]
    pub owner_id: Option<String>,
    /// Display name.
    #[serde(default)]
    pub filename: Option<String>,
    /// When it was made.
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    /// Thumbnails it recorded in the current shape.
    #[serde(default)]
    pub thumbnails: std::collections::BTreeMap<String, Derivative>,
    /// Variants it recorded in the current shape.
    #[serde(default)]
    pub variants: std::collections::BTreeMap<String, Derivative>,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Working (or died: its lease tells).
    Running,
    /// Stopped before the end (interrupted, out of time); the next start resumes it.
    Stopped,
    /// Stopped by an error; the next start resumes it.
    Failed,
    /// Done.
    Completed,
}

/// What happened to the originals (a dry run: what would happen).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillCounts {
    /// Objects under `originals/` looked at.
    pub images_found: u64,
    /// Rows created for originals without one.
    pub rows_created: u64,
    /// Legacy rows replaced by complete ones.
    pub rows_repaired: u64,
    /// Existing rows whose unstarted stages were enqueued.
    pub rows_requeued: u64,
    /// Stage messages sent (each renders a stage's missing derivatives).
    pub stages_enqueued: u64,
    /// Derivative files those stages make.
    pub derivatives_missing: u64,
    /// Completed images left alone.
    pub completed: u64,
    /// Images with a stage in progress, left alone.
    pub in_progress: u64,
    /// Failed images, left alone (retry-all-failed brings them back).
    pub failed: u64,
    /// Rows changed since the run started (by the run itself before a resume, or by uploads).
    pub changed_during_run: u64,
    /// Objects that are not images Safelight can process, or whose key is not one it makes.
    pub not_images: u64,
    /// Originals whose key names another owner than their row.
    pub foreign_owner: u64,
    /// Megapixels of the originals to process (from their headers; estimated from the size
    /// when the header is beyond the bytes read).
    pub megapixels: f64_bits::F64,
}

/// Megapixels summed without losing `Eq` on the counts.
pub mod f64_bits {
    use serde::{Deserialize, Serialize};

    /// An `f64` kept in millionths, so counts stay `Eq` and serialise as a plain number.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
    pub struct F64(pub u64);

    impl F64 {
        /// From a float.
        pub fn from_f64(v: f64) -> Self {
            F64((v.max(0.0) * 1e6).round() as u64)
        }
        /// As a float.
        pub fn get(self) -> f64 {
            self.0 as f64 / 1e6
        }
    }

    impl Serialize for F64 {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_f64(self.get())
        }
    }

    impl<'de> Deserialize<'de> for F64 {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            f64::deserialize(d).map(F64::from_f64)
        }
    }
}

impl BackfillCounts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &BackfillCounts) {
        self.images_found += other.images_found;
        self.rows_created += other.rows_created;
        self.rows_repaired += other.rows_repaired;
        self.rows_requeued += other.rows_requeued;
        self.stages_enqueued += other.stages_enqueued;
        self.derivatives_missing += other.derivatives_missing;
        self.completed += other.completed;
        self.in_progress += other.in_progress;
        self.failed += other.failed;
        self.changed_during_run += other.changed_during_run;
        self.not_images += other.not_images;
        self.foreign_owner += other.foreign_owner;
        self.megapixels = f64_bits::F64(self.megapixels.0 + other.megapixels.0);
    }
}

/// The run-once marker (`migration#{MIGRATION}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// The run's id.
    pub run_id: String,
    /// Where it is.
    pub state: RunState,
    /// Whether it was started with `force`.
    #[serde(default)]
    pub forced: bool,
    /// When it started (rows changed after it are left alone).
    pub started_at: Timestamp,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// The last key done: a resume lists after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// While running: until when it holds the run (milliseconds since the epoch).
    #[serde(default)]
    pub lease_until_ms: i64,
    /// What it did so far.
    #[serde(default)]
    pub counts: BackfillCounts,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
