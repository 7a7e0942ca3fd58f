//! Memory bound: hostile files fail with typed errors without the engine allocating much.
//! A counting allocator records the peak of live Rust heap bytes while each file is rendered; the
//! tests of this binary take a lock so that nothing else allocates meanwhile. (libjpeg-turbo and
//! libwebp allocate with malloc, which this does not see: with `turbo` the bound covers the Rust
//! side, i.e. pixel buffers and outputs.)

#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use safelight::engine::{default_thumbnail_specs, default_variant_specs, render, Limits};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(live, Ordering::SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Peak heap bytes allocated (above what was live before) while running `f`.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst).saturating_sub(before))
}

#[test]
fn hostile_files_fail_typed_within_a_small_memory_bound() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut specs = default_thumbnail_specs();
    specs.extend(default_variant_specs());
    // (file, expected code, peak bytes allowed beyond the file itself)
    let cases = [
        ("bomb-100000x100000.png", "too_large", 1 << 20),
        ("bomb-65535x65535.jpg", "too_large", 1 << 20),
        ("bomb-65535x65535.gif", "too_large", 1 << 20),
        ("bomb-16777216-squared.webp", "too_large", 1 << 20),
        ("giant-frame.gif", "*", 64 << 20),
        ("truncated.jpg", "truncated", 16 << 20),
        ("truncated.png", "truncated", 16 << 20),
        ("corrupt-scan.jpg", "*", 16 << 20),
        ("png-behind-jpeg-magic.jpg", "corrupt", 1 << 20),
    ];
    for (name, code, bound) in cases {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let (result, peak) = peak_during(|| render(&bytes, &specs, &Limits::default()));
        if code != "*" {
            assert_eq!(
                result.as_ref().map(|_| ()).unwrap_err().code(),
                code,
                "{name}"
            );
        }
        assert!(peak <= bound, "{name}: peak {peak} bytes > {bound}");
    }
}

#[test]
fn a_photo_renders_within_a_bound_proportional_to_its_reduced_decode() {
    // 1024x768 JPEG, thumbnails only: the decode (2.4 MB as RGB at most) plus the resized copies
    // and encoder buffers stay well under 16 MB.
    let bytes = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photo-1024x768.jpg"),
    )
    .unwrap();
    let (result, peak) =
        peak_during(|| render(&bytes, &default_thumbnail_specs(), &Limits::default()));
    assert_eq!(result.unwrap().outputs.len(), 3);
    assert!(peak < 16 << 20, "peak {peak}");
}
