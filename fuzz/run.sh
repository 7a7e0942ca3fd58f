#!/usr/bin/env bash
# Fuzzes the image engine for $1 seconds (default 300), seeded with the regression corpus.
# Needs cargo-fuzz (installed here if missing) and a nightly-capable toolchain; on a stable
# toolchain RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags. Crashes land in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p fuzz/corpus/engine
cp -n shared/tests/fixtures/*.{jpg,png,gif,webp,avif,heic} fuzz/corpus/engine/ 2>/dev/null || true
# -detect_leaks=0 (and ASan's own check at exit): rav1d leaks 48 B per decoded picture by design
# (fuzz/regressions/README.md); without it a campaign "crashes" at exit on the empty input.
# Release arithmetic (-O: no overflow checks, no debug assertions), as the functions are built:
# rav1d relies on wrapping arithmetic in places (fuzz/regressions/README.md), so cargo fuzz's
# default debug assertions stop at panics production never has. FUZZ_DEBUG_ASSERTIONS=1 fuzzes
# with them (and RUST_LIB_BACKTRACE=0 keeps rav1d's DisjointMut checks from capturing a backtrace
# at every borrow when RUST_BACKTRACE=1 is set: 26 instead of ~390 runs/s).
mode=(-O)
[ "${FUZZ_DEBUG_ASSERTIONS:-0}" = 1 ] && mode=(-a)
RUST_LIB_BACKTRACE=0 ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}" RUSTC_BOOTSTRAP=1 cargo fuzz run "${mode[@]}" engine fuzz/corpus/engine -- -max_total_time="${1:-300}" -rss_limit_mb=2048 -timeout=10 -detect_leaks=0
