//! Memory bound: hostile files fail with typed errors without the engine allocating much.
//! A counting allocator records the peak of live Rust heap bytes while each file is rendered; the
//! tests of this binary take a lock so that nothing else allocates meanwhile. (libjpeg-turbo and
//! libwebp allocate with malloc, which this does not see: with `turbo` the bound covers the Rust
//! side, i.e. pixel buffers and outputs.)

#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use safelight_engine::{default_thumbnail_specs, default_variant_specs, render, Limits};

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

/// Held for a test's whole body: the counters are process-wide, so nothing else may allocate
/// while a test measures, set-up included.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Peak heap bytes allocated (above what was live before) while running `f`. Call under
/// [`serial`].
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst).saturating_sub(before))
}

#[test]
fn hostile_files_fail_typed_within_a_small_memory_bound() {
    let _one_at_a_time = serial();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
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
    let _one_at_a_time = serial();
    // 1024x768 JPEG, thumbnails only: the decode (2.4 MB as RGB at most) plus the resized copies
    // and encoder buffers stay well under 16 MB.
    let bytes = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/photo-1024x768.jpg"),
    )
    .unwrap();
    let (result, peak) =
        peak_during(|| render(&bytes, &default_thumbnail_specs(), &Limits::default()));
    assert_eq!(result.unwrap().outputs.len(), 3);
    assert!(peak < 16 << 20, "peak {peak}");
}

#[test]
fn a_16_bit_rgba_png_over_the_decode_budget_is_refused_from_its_header_naming_the_budget() {
    let _one_at_a_time = serial();
    // The header of a 10000x10000 16-bit RGBA PNG and nothing else: the refusal must come from
    // the header, before any pixel data is read.
    let mut header = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    header.extend_from_slice(&10_000u32.to_be_bytes());
    header.extend_from_slice(&10_000u32.to_be_bytes());
    header.extend_from_slice(&[16, 6, 0, 0, 0, 0, 0, 0, 0]);
    let mut specs = default_thumbnail_specs();
    specs.extend(default_variant_specs());
    let (result, peak) = peak_during(|| render(&header, &specs, &Limits::for_memory_mb(1024)));
    let err = result.unwrap_err();
    assert_eq!(err.code(), "too_large");
    let reason = err.to_string();
    assert!(
        reason.contains("10000x10000") && reason.contains("512 MiB"),
        "the reason names the size and the budget: {reason}"
    );
    assert!(peak < 1 << 20, "peak {peak} bytes");
}

#[test]
fn a_16_bit_png_is_narrowed_without_holding_a_16_bit_copy() {
    let _one_at_a_time = serial();
    // 64 MB decoded: over the engine's KEEP_MAX (48 MiB), so no decode buffer outlives the render
    // and the bound below is about this render alone (see the next test for the kept buffer).
    let (w, h) = (4000u32, 4000u32);
    let bytes = safelight_engine::samples::png_rgba16_one_colour(w, h, [0xffff, 0x8000, 0, 0xffff]);
    let pixels = u64::from(w) * u64::from(h);
    let (result, peak) = peak_during(|| {
        render(
            &bytes,
            &default_variant_specs(),
            &Limits::for_memory_mb(1024),
        )
    });
    let rendered = result.unwrap();
    assert_eq!((rendered.source.width, rendered.source.height), (w, h));
    // The 8-bit RGBA decode and the resampler's premultiplied copy of it (8 bytes a pixel), its
    // horizontal pass to 2048 px and the 2048 px output, twice over for the encoders' own
    // buffers (the pure-Rust WebP encoder of the no-C-codecs build keeps more than libwebp),
    // + 10%. Holding the decode at 16 bits as well would add another 8 bytes a pixel (72 MB
    // here), more than that slack.
    let resample = 2048 * u64::from(h) * 4 + 2048 * 2048 * 4;
    let bound = (pixels * 8 + 2 * resample) * 11 / 10;
    // With a 16-bit copy the decode alone would hold 16 bytes a pixel next to the resampler.
    assert!(
        bound < pixels * 16 + resample,
        "the bound must still catch a 16-bit copy"
    );
    assert!((peak as u64) < bound, "peak {peak} bytes >= {bound}");
    // The same file is refused where half the memory cannot hold that.
    let err = render(
        &bytes,
        &default_variant_specs(),
        &Limits::for_memory_mb(128),
    )
    .unwrap_err();
    assert_eq!(err.code(), "too_large", "{err}");
}

#[test]
fn one_decode_buffer_of_at_most_48_mib_is_kept_for_the_next_image() {
    let _one_at_a_time = serial();
    const KEEP_MAX: usize = 48 << 20;
    // Run on a fresh thread: the buffer is the thread's, and ends with it.
    std::thread::spawn(|| {
        let small = safelight_engine::samples::png_rgba16_one_colour(
            3000,
            2000,
            [0, 0x8000, 0xffff, 0xffff],
        );
        let big =
            safelight_engine::samples::png_rgba16_one_colour(4000, 4000, [0xffff, 0, 0, 0xffff]);
        let specs = default_thumbnail_specs();
        let limits = Limits::for_memory_mb(1024);
        let decoded = 3000 * 2000 * 4;

        let base = LIVE.load(Ordering::SeqCst);
        let (first, cold) = peak_during(|| render(&small, &specs, &limits));
        first.unwrap();
        let kept = LIVE.load(Ordering::SeqCst) - base;
        assert!(
            (decoded..=decoded + (1 << 20)).contains(&kept),
            "the decode buffer ({decoded} bytes) stays for the next image: {kept} bytes live"
        );
        // The next image of that size or smaller decodes into it: no second decode buffer.
        let (second, warm) = peak_during(|| render(&small, &specs, &limits));
        second.unwrap();
        assert!(
            warm + decoded <= cold + (1 << 20),
            "a warm render allocates no decode buffer: cold {cold}, warm {warm}"
        );
        // A decode over KEEP_MAX is freed as before, and the smaller kept buffer with it.
        render(&big, &specs, &limits).unwrap();
        let after = LIVE.load(Ordering::SeqCst) - base;
        assert!(
            after < 1 << 20,
            "nothing over KEEP_MAX ({KEEP_MAX}) stays: {after} bytes live"
        );
    })
    .join()
    .unwrap();
}
