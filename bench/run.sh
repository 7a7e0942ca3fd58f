#!/usr/bin/env bash
# `make bench`: runs the image benchmark side by side and regenerates BENCHMARKS.md.
# Installs what it needs, idempotently: apt cmake/nasm (libjpeg-turbo build), the project venv
# .venv with pyvips + pyvips-binary + Pillow, sharp into bench/node_modules, the corpus source
# (Debian's mate-backgrounds). Extra arguments go to bench/bench.py (e.g. --quick, --rounds 5).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if ! apt-get install -y -qq "$@" >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq "$@"
  fi
}
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v nasm >/dev/null || need+=(nasm)
command -v taskset >/dev/null || need+=(util-linux)
command -v node >/dev/null || need+=(nodejs npm)
if ((${#need[@]})); then apt_install "${need[@]}"; fi

[ -x .venv/bin/python ] || python3 -m venv .venv
if ! .venv/bin/python -c 'import pyvips, PIL' 2>/dev/null; then
  .venv/bin/pip install -q "pyvips==3.2.0" "pyvips-binary==8.18.7" "Pillow==13.0.0"
fi

[ -d bench/node_modules/sharp ] || (cd bench && npm install --no-audit --no-fund --silent)

if [ ! -f bench/corpus/24mp.jpg ] || [ ! -f bench/corpus/12mp.avif ] || [ ! -f bench/corpus/12mp-p3.jpg ]; then
  mkdir -p bench/cache
  src=bench/cache/mate/usr/share/backgrounds/mate/abstract/Elephants_5640x3172.jpg
  if [ ! -f "$src" ]; then
    (cd bench/cache && { apt-get download mate-backgrounds 2>/dev/null || { apt-get update -qq && apt-get download mate-backgrounds; }; } \
      && dpkg-deb -x mate-backgrounds_*.deb mate)
  fi
  .venv/bin/python bench/tools/make_corpus.py "$src" bench/corpus
fi

cargo build --release -q -p safelight-bench
CARGO_TARGET_DIR=target/bench-pure cargo build --release -q -p safelight-bench --no-default-features

.venv/bin/python bench/bench.py "$@"
