#!/usr/bin/env bash
# `make proof`: the reliability scenarios (seed figure, burst, breaker, scale model) against a
# local stack of its own, with the functions built with the `local` profile (release
# optimisations, no fat LTO), and RELIABILITY.md regenerated from the figures. Not part of
# `make test`; takes ~15 minutes on 2 cores once built (the first build of the `local` profile
# compiles the dependency graph once more: ~10-20 minutes, in target/proof).
#
# Installs what it needs idempotently (the project venv via stack.sh setup; the corpus source,
# Debian's mate-backgrounds, with apt-get download as bench/run.sh does). Its stack uses its own
# state dir and ports (.local/proof, PROOF_EMULATOR_PORT=4568, PROOF_ISSUER_PORT=4592), so a
# `make dev` or `make test` stack is left alone, and it is stopped at the end, also on failure.
#   PROOF_ONLY=seed,burst   run some scenarios only (the report then has only those)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=infra/local/own_stack.sh
source "$ROOT/infra/local/own_stack.sh"
export LOCAL_PROFILE="${PROOF_PROFILE:-local}"
export CARGO_TARGET_DIR="${PROOF_TARGET_DIR:-$ROOT/target/proof}"
CORPUS="$ROOT/bench/corpus/proof"
own_stack proof "${PROOF_EMULATOR_PORT:-4568}" "${PROOF_ISSUER_PORT:-4592}"

step "setup"
"$STACK" setup

step "corpus (bench/corpus/proof, from Debian's mate-backgrounds)"
if [ ! -f "$CORPUS/elephants3-4000.jpg" ]; then
  mkdir -p bench/cache
  src=bench/cache/mate/usr/share/backgrounds/mate
  if [ ! -d "$src/nature" ]; then
    (cd bench/cache && { ls mate-backgrounds_*.deb >/dev/null 2>&1 \
      || apt-get download mate-backgrounds 2>/dev/null \
      || { apt-get update -qq && apt-get download mate-backgrounds; }; } \
      && dpkg-deb -x mate-backgrounds_*.deb mate)
  fi
  # The corpus tool resizes with Pillow (the version bench/run.sh pins); the venv from
  # `stack.sh setup` does not have it.
  .venv/bin/python -c 'import PIL' 2>/dev/null || .venv/bin/pip install -q "Pillow==13.0.0"
  .venv/bin/python bench/tools/proof_corpus.py "$src" "$CORPUS"
fi
echo "$(ls "$CORPUS"/*.jpg | wc -l) photos, $(du -sh "$CORPUS" | cut -f1)"

step "building the functions and the driver (cargo profile $LOCAL_PROFILE, $CARGO_TARGET_DIR)"
build_start=$SECONDS
"$STACK" build
# --workspace: the same feature resolution as the functions, so nothing is built twice.
cargo build --profile "$LOCAL_PROFILE" --workspace --bin proof
build_secs=$((SECONDS - build_start))

trap stop_own_stack EXIT
step "a fresh proof stack (emulator on 127.0.0.1:$EMULATOR_PORT, state in .local/proof)"
"$STACK" start
"$STACK" reset

machine="$(nproc) vCPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
machine+=", $(awk '/MemTotal/ {printf "%.0f GB RAM", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
machine+=", load average at start $(cut -d' ' -f1-3 /proc/loadavg); build of the functions took ${build_secs} s"
step "scenarios"
run_start=$SECONDS
# Cargo puts the `dev` profile's binaries in target/debug, every other profile's under its name.
profile_dir="$LOCAL_PROFILE"
[ "$LOCAL_PROFILE" != dev ] || profile_dir=debug
"$CARGO_TARGET_DIR/$profile_dir/proof" --out RELIABILITY.md --corpus "$CORPUS" \
  --only "${PROOF_ONLY:-seed,burst,breaker,scale}" --profile "$LOCAL_PROFILE" \
  --command "make proof" --machine "$machine"
step "scenarios took $(((SECONDS - run_start) / 60)) min $(((SECONDS - run_start) % 60)) s; RELIABILITY.md rewritten"
