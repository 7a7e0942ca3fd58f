#!/usr/bin/env bash
# Fuzzes the image engine for $1 seconds (default 300; further arguments go to libFuzzer, e.g.
# -runs=1000000) under the memory a 1024 MB function
# promises: the target renders with `Limits::for_memory_mb(1024)`, libFuzzer stops at any single
# allocation over the 512 MiB decode budget (-malloc_limit_mb) and at an RSS over the function's
# 1024 MB (-rss_limit_mb). Seeds: the regression corpus (shared/tests/fixtures), the fuzz findings
# (fuzz/regressions) and the bomb corpus (written by shared/tests/fixtures/bombs.rs).
# Needs cargo-fuzz (installed here if missing) and a nightly-capable toolchain; on a stable
# toolchain RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags. Crashes land in fuzz/artifacts/.
# One job, at the lowest priority: `nice -n 19 fuzz/run.sh 3600` leaves the machine to builds.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
corpus=fuzz/corpus/engine
mkdir -p "$corpus"
cp -n shared/tests/fixtures/*.{jpg,png,gif,webp,avif,heic} "$corpus"/ 2>/dev/null || true
cp -n fuzz/regressions/*.{jpg,png,gif,webp,avif,heic} "$corpus"/ 2>/dev/null || true
SAFELIGHT_BOMB_DIR="$PWD/$corpus" cargo test -q -p safelight-engine --test bombs -- --ignored \
  write_the_bomb_corpus >/dev/null
# -detect_leaks=0 (and ASan's own check at exit): rav1d leaks 48 B per decoded picture by design
# (fuzz/regressions/README.md); without it a campaign "crashes" at exit on the empty input.
# quarantine_size_mb: ASan keeps freed memory for a while (256 MB by default), which would count
# against -rss_limit_mb though the engine has released it.
# Release arithmetic (-O: no overflow checks, no debug assertions), as the functions are built:
# rav1d relies on wrapping arithmetic in places (fuzz/regressions/README.md), so cargo fuzz's
# default debug assertions stop at panics production never has. FUZZ_DEBUG_ASSERTIONS=1 fuzzes
# with them (and RUST_LIB_BACKTRACE=0 keeps rav1d's DisjointMut checks from capturing a backtrace
# at every borrow when RUST_BACKTRACE=1 is set: 26 instead of ~390 runs/s).
# -max_len: inputs up to 2 MiB (the bombs are up to ~1.2 MB; mutating larger inputs is slow).
mode=(-O)
[ "${FUZZ_DEBUG_ASSERTIONS:-0}" = 1 ] && mode=(-a)
RUST_LIB_BACKTRACE=0 ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:quarantine_size_mb=32}" \
  RUSTC_BOOTSTRAP=1 cargo fuzz run "${mode[@]}" engine "$corpus" -- \
  -max_total_time="${1:-300}" -malloc_limit_mb=512 -rss_limit_mb=1024 -timeout=10 \
  -max_len=2097152 -detect_leaks=0 -print_final_stats=1 "${@:2}"
