//! Arbitrary bytes into `probe` and `render`: any panic (libfuzzer-sys aborts on panic, so the
//! engine's own catch_unwind cannot hide one), any crash or runaway allocation is a bug.
//!
//! `cargo fuzz run engine fuzz/seeds -- -max_total_time=300` from the repo root; seeds are the
//! regression corpus (`shared/tests/fixtures`), copied by `fuzz/run.sh`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use safelight::engine::{probe, render, Limits, OutputFormat, Spec};

fuzz_target!(|data: &[u8]| {
    // Smaller limits than production keep each run fast; the checks are the same code.
    let limits = Limits { max_pixels: 4_000_000, max_side: 4096, ..Limits::default() };
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
