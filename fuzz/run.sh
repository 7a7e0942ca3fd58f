#!/usr/bin/env bash
# Fuzzes the image engine for $1 seconds (default 300), seeded with the regression corpus.
# Needs cargo-fuzz (installed here if missing) and a nightly-capable toolchain; on a stable
# toolchain RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags. Crashes land in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p fuzz/corpus/engine
cp -n shared/tests/fixtures/*.{jpg,png,gif,webp,avif,heic} fuzz/corpus/engine/ 2>/dev/null || true
RUSTC_BOOTSTRAP=1 cargo fuzz run engine fuzz/corpus/engine -- -max_total_time="${1:-300}" -rss_limit_mb=2048 -timeout=10
