#!/usr/bin/env bash
# `make test` (and CI): everything, from a fresh clone, offline.
#   1. install what the machine lacks (apt packages only if missing, the pinned venv)
#   2. make lint (rustfmt, clippy -D warnings, cfn-lint, sam validate --lint)
#   3. unit tests: cargo test --workspace --exclude safelight-e2e
#   4. the local stack (emulator + issuer + functions from infra/template.yaml), smoke checks of its
#      wiring, then each integration suite of the `safelight-e2e` crate with a reset between suites
#   5. stop what this run started, also on failure
# The native functions are built with the `dev` profile (LOCAL_PROFILE), sharing the unit
# tests' artifacts: a cold run compiles the dependency graph once instead of twice.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
STACK="$ROOT/infra/local/stack.sh"
export LOCAL_PROFILE="${LOCAL_PROFILE:-dev}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
E2E=safelight-e2e

step() { printf '\n\033[1m==> [%dm%02ds] %s\033[0m\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }
started_stack=0
cleanup() {
  local rc=$?
  trap - EXIT
  if [ "$started_stack" = 1 ]; then
    step "stopping the local stack"
    "$STACK" down || true
  fi
  exit "$rc"
}
trap cleanup EXIT
SECONDS=0

step "setup"
"$STACK" setup

step "lint"
make --no-print-directory lint

# Is the integration crate in the workspace (yet)?
metadata="$(cargo metadata --no-deps --format-version 1)"
suites="$(printf '%s' "$metadata" | .venv/bin/python -c '
import json, sys
pkgs = json.load(sys.stdin)["packages"]
print(" ".join(t["name"] for p in pkgs if p["name"] == "'"$E2E"'" for t in p["targets"] if "test" in t["kind"]))')"
has_e2e="$(printf '%s' "$metadata" | .venv/bin/python -c '
import json, sys
print(any(p["name"] == "'"$E2E"'" for p in json.load(sys.stdin)["packages"]))')"

step "unit tests"
if [ "$has_e2e" = True ]; then
  cargo test --workspace --exclude "$E2E"
  step "building the integration suites"
  cargo test -p "$E2E" --no-run
else
  cargo test --workspace
fi

step "local stack"
if ! curl -fsS "http://127.0.0.1:${EMULATOR_PORT:-4566}/_ministack/health" >/dev/null 2>&1; then
  started_stack=1
fi
"$STACK" start
"$STACK" build
"$STACK" reset

step "smoke checks of the stack's wiring"
.venv/bin/python infra/local/smoke.py

if [ "$has_e2e" = True ]; then
  for suite in $suites; do
    # Every suite starts from a freshly deployed, empty stack.
    "$STACK" reset
    step "integration suite: $suite"
    cargo test -p "$E2E" --test "$suite"
  done
  if [ -z "$suites" ]; then
    step "integration tests (crate without suites)"
    cargo test -p "$E2E"
  fi
fi

step "all green in $((SECONDS / 60)) min $((SECONDS % 60)) s"
