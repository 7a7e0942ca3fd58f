//! Arbitrary bytes into `probe` and `render` under the limits of a 1024 MB function: any panic
//! (libfuzzer-sys aborts on panic, so the engine's own catch_unwind cannot hide one), any crash,
//! and any allocation over the decode budget is a bug. `fuzz/run.sh` runs it with libFuzzer's
//! `-malloc_limit_mb` at that budget (512: one allocation over it is a finding) and
//! `-rss_limit_mb=1024` (the function's memory).
//!
//! `fuzz/run.sh [seconds]` from the repo root; seeds are the regression corpus
//! (`shared/tests/fixtures`), the fuzz findings (`fuzz/regressions`) and the bomb corpus
//! (`shared/tests/fixtures/bombs.rs`), copied and written by `fuzz/run.sh`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use safelight::engine::{probe, render, Limits, OutputFormat, Spec};

fuzz_target!(|data: &[u8]| {
    // The processors' limits; small outputs keep each run fast (the decode is the same).
    let limits = Limits::for_memory_mb(1024);
    let probed = probe(data, &limits);
    let specs = [
        Spec::new(64, OutputFormat::Jpeg),
        Spec::new(32, OutputFormat::Webp),
        Spec::new(16, OutputFormat::Png),
    ];
    match render(data, &specs, &limits) {
        Ok(r) => {
            // What render read must agree with probe, and outputs must fit the specs.
            assert_eq!(Ok(r.source), probed);
            assert_eq!(r.outputs.len(), 3);
            for (o, s) in r.outputs.iter().zip(&specs) {
                assert!(o.width.max(o.height) <= s.max_edge && o.width > 0 && o.height > 0);
                assert!(!o.bytes.is_empty());
            }
        }
        Err(e) => assert!(!e.code().is_empty()),
    }
});
