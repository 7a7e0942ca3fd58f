//! Arbitrary bytes into `probe` and `render` under the limits of a 1024 MB function: any panic
//! (libfuzzer-sys aborts on panic, so the engine's own catch_unwind cannot hide one), any crash,
//! and any render whose live heap (every allocation of the process, C codecs included, counted
//! by sanitizer hooks) passes the decode budget is a bug. `fuzz/run.sh` also runs it with
//! libFuzzer's `-malloc_limit_mb` at that budget (512: one allocation over it is a finding) and
//! `-rss_limit_mb=1024` (the function's memory).
//!
//! `fuzz/run.sh [seconds]` from the repo root; seeds are the regression corpus
//! (`shared/tests/fixtures`), the fuzz findings (`fuzz/regressions`) and the bomb corpus
//! (`shared/tests/fixtures/bombs.rs`), copied and written by `fuzz/run.sh`.

#![no_main]

use std::ffi::c_void;
use std::sync::atomic::{AtomicIsize, Ordering};

use libfuzzer_sys::fuzz_target;
use safelight_engine::{probe, render, Limits, OutputFormat, Spec};

// -malloc_limit_mb sees one allocation at a time; these hooks (the sanitizer's, beside
// libFuzzer's own) count the bytes live in the whole process, C codecs included, so a render
// whose allocations together pass the budget is a finding too.
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

extern "C" {
    fn __sanitizer_install_malloc_and_free_hooks(
        malloc_hook: extern "C" fn(*const c_void, usize),
        free_hook: extern "C" fn(*const c_void),
    ) -> i32;
    fn __sanitizer_get_allocated_size(p: *const c_void) -> usize;
}

extern "C" fn on_malloc(_: *const c_void, size: usize) {
    let live = LIVE.fetch_add(size as isize, Ordering::Relaxed) + size as isize;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

extern "C" fn on_free(p: *const c_void) {
    if !p.is_null() {
        // SAFETY: the sanitizer calls this hook with a pointer it allocated, before freeing it.
        let size = unsafe { __sanitizer_get_allocated_size(p) };
        LIVE.fetch_sub(size as isize, Ordering::Relaxed);
    }
}

fuzz_target!(|data: &[u8]| {
    static HOOKS: std::sync::Once = std::sync::Once::new();
    // SAFETY: installs two hooks that only update atomics.
    HOOKS.call_once(|| unsafe {
        __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
    });
    // The processors' limits; small outputs keep each run fast (the decode is the same).
    let limits = Limits::for_memory_mb(1024);
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
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
    // With outputs this small the render is the decode and its first resampling: what the
    // header estimate bounds by the budget.
    let peak = PEAK.load(Ordering::Relaxed) - before;
    assert!(
        peak <= limits.max_decode_bytes as isize,
        "the render peaked at {peak} bytes, over the {} byte decode budget",
        limits.max_decode_bytes
    );
});
