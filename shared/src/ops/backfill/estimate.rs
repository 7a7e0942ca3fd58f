//! The dry run's estimate: what the originals found would cost to process, from the engine's
//! measured speed per megapixel and Lambda's prices.

use serde::Serialize;

use super::BackfillCounts;
use crate::engine::Limits;

/// How fast the engine renders, per megapixel of the original, and what Lambda costs: the
/// basis of the dry run's estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostModel {
    /// Thumbnail stage (150/300/600 JPEG from one decode), ms of one core per megapixel.
    pub thumbnail_ms_per_mp: f64,
    /// Variant stage (1280/2048 JPEG + WebP), ms of one core per megapixel.
    pub variant_ms_per_mp: f64,
    /// Per stage and image: fetching the original, storing the outputs, the row writes.
    pub io_ms_per_stage: f64,
    /// The processors' memory (MB); Lambda gives a full vCPU at 1769 MB, a share below.
    pub memory_mb: u32,
    /// USD per GB-second (arm64, us-east-1: 0.0000133334).
    pub usd_per_gb_second: f64,
    /// USD per million requests (0.20).
    pub usd_per_million_requests: f64,
    /// Messages per invocation (the event source's batch size).
    pub batch_size: u32,
    /// Processor invocations running at once per stage, for the wall-clock estimate.
    pub concurrency: u32,
}

impl Default for CostModel {
    /// The engine's speed as measured by `make bench` (BENCHMARKS.md, 2026-12-01, one core of a
    /// quiet 2 vCPU EPYC): a 12 MP JPEG takes 33.6 ms for the thumbnail set and 388.6 ms for the
    /// variant set, i.e. 2.8 and 32.4 ms per megapixel.
    fn default() -> Self {
        CostModel {
            thumbnail_ms_per_mp: 33.6 / 12.0,
            variant_ms_per_mp: 388.6 / 12.0,
            io_ms_per_stage: 150.0,
            memory_mb: 1024,
            usd_per_gb_second: 0.000_013_333_4,
            usd_per_million_requests: 0.20,
            batch_size: 10,
            concurrency: 10,
        }
    }
}

/// The estimate for a set of originals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// Lambda compute, in seconds of a processor (at its memory size).
    pub compute_secs: f64,
    /// Wall-clock time at `concurrency` invocations per stage.
    pub wall_secs: f64,
    /// The concurrency assumed.
    pub concurrency: u32,
    /// GB-seconds billed.
    pub gb_seconds: f64,
    /// Lambda cost in USD (compute and requests).
    pub lambda_usd: f64,
}

impl CostModel {
    /// The estimate for `stages` stage runs (of which `thumbnail_share` are thumbnail runs)
    /// over originals of `megapixels` in total.
    pub fn estimate(&self, counts: &BackfillCounts, thumbnails: u64, variants: u64) -> Estimate {
        let found_images =
            (counts.rows_created + counts.rows_repaired + counts.rows_requeued).max(1);
        let mp_per_image = counts.megapixels.get() / found_images as f64;
        let cpu_share = (f64::from(self.memory_mb) / 1769.0).min(1.0);
        let stage_secs = |runs: u64, ms_per_mp: f64| {
            runs as f64 * (mp_per_image * ms_per_mp / cpu_share + self.io_ms_per_stage) / 1000.0
        };
        let thumb = stage_secs(thumbnails, self.thumbnail_ms_per_mp);
        let variant = stage_secs(variants, self.variant_ms_per_mp);
        let compute_secs = thumb + variant;
        let gb_seconds = compute_secs * f64::from(self.memory_mb) / 1024.0;
        let invocations = (thumbnails + variants).div_ceil(u64::from(self.batch_size.max(1)));
        let concurrency = self.concurrency.max(1);
        Estimate {
            compute_secs,
            wall_secs: thumb.max(variant) / f64::from(concurrency),
            concurrency,
            gb_seconds,
            lambda_usd: gb_seconds * self.usd_per_gb_second
                + invocations as f64 / 1e6 * self.usd_per_million_requests,
        }
    }
}

/// Megapixels of an original from its header, or estimated from its size (about 0.33 bytes a
/// pixel for camera JPEGs) when the header lies beyond the bytes read.
pub(super) fn megapixels(head: &[u8], size: u64) -> f64 {
    let unlimited = Limits {
        max_pixels: u64::MAX,
        max_side: u32::MAX,
        max_decode_bytes: u64::MAX,
    };
    match crate::engine::probe(head, &unlimited) {
        Ok(p) => f64::from(p.width) * f64::from(p.height) / 1e6,
        Err(_) => size as f64 / 330_000.0,
    }
}
