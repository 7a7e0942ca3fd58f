#!/usr/bin/env bash
# `make test` (and CI): everything, from a fresh clone, offline.
#   1. install what the machine lacks (apt packages only if missing, the pinned venv)
#   2. make lint (rustfmt, clippy -D warnings, cfn-lint, ESLint, sam validate --lint), then the offline
#      checks of infra/: template invariants, OpenAPI document against the routes, function crates
#      against the template's cargo-lambda builds (~1 s)
#   3. unit tests: every test target but the `safelight-e2e` suites
#   4. the local stack (emulator + issuer + functions from infra/template.yaml), smoke checks of its
#      wiring, the drift check (local vs AWS deployment: documented parameter overrides only),
#      then each integration suite of the `safelight-e2e` crate with a reset between suites
#   5. the browser side (web/): typecheck, Vitest unit tests, the production build and its JS size
#      budget; then, on a freshly reset stack, Playwright tests in Debian's Chromium
#   6. stop the test stack, also on failure (a `make dev` stack, if any, is left alone)
# The native functions are built with the `dev` profile (LOCAL_PROFILE), sharing the unit
# tests' artifacts: a cold run compiles the dependency graph once instead of twice.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
STACK="$ROOT/infra/local/stack.sh"
export LOCAL_PROFILE="${LOCAL_PROFILE:-dev}"
# Its own stack, beside any `make dev` one: own state dir and ports, so running the tests never
# resets a stack someone is using. The suites find it through SAFELIGHT_STACK_ENV.
export SAFELIGHT_LOCAL_DIR="$ROOT/.local/test"
export EMULATOR_PORT="${TEST_EMULATOR_PORT:-4567}" ISSUER_PORT="${TEST_ISSUER_PORT:-4591}"
export SAFELIGHT_STACK_ENV="$SAFELIGHT_LOCAL_DIR/stack.env"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
E2E=safelight-e2e

step() { printf '\n\033[1m==> [%dm%02ds] %s\033[0m\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }
cleanup() {
  local rc=$?
  trap - EXIT
  step "stopping the test stack"
  "$STACK" down || true
  exit "$rc"
}
trap cleanup EXIT
SECONDS=0

step "setup"
"$STACK" setup

step "lint"
make --no-print-directory lint

step "offline checks of infra/ (template invariants, OpenAPI vs routes, functions vs template)"
.venv/bin/python -m unittest discover -s infra/tests -v

# Test targets: the integration suites are the `safelight-e2e` crate's; everything else is a unit
# test. Every cargo call selects the whole workspace, so one feature resolution (one build of the
# dependency graph) serves the unit tests, the suites and the function binaries alike.
read -r -a unit_tests < <(cargo metadata --no-deps --format-version 1 | .venv/bin/python -c '
import json, sys
pkgs = json.load(sys.stdin)["packages"]
print(" ".join(sorted({t["name"] for p in pkgs if p["name"] != "'"$E2E"'" for t in p["targets"] if "test" in t["kind"]})))') || true
read -r -a suites < <(cargo metadata --no-deps --format-version 1 | .venv/bin/python -c '
import json, sys
pkgs = json.load(sys.stdin)["packages"]
print(" ".join(t["name"] for p in pkgs if p["name"] == "'"$E2E"'" for t in p["targets"] if "test" in t["kind"]))') || true
for suite in "${suites[@]}"; do
  for unit in "${unit_tests[@]}"; do
    [ "$suite" != "$unit" ] || { echo "test target name '$suite' is both an e2e suite and a unit test: rename one" >&2; exit 1; }
  done
done

step "building the tests"
cargo test --workspace --no-run

step "unit tests"
unit_args=(--lib --bins)
for t in "${unit_tests[@]}"; do unit_args+=(--test "$t"); done
cargo test --workspace "${unit_args[@]}"
cargo test --workspace --doc

step "web: lint (ESLint), typecheck, unit tests (Vitest), build, JS size budget"
web/scripts/web.sh unit

step "engine without C codecs (the pure-Rust feature path)"
cargo test -p safelight-shared -p safelight-engine --no-default-features --features testing --lib --tests

step "local stack (emulator on 127.0.0.1:$EMULATOR_PORT, state in .local/test)"
"$STACK" start
"$STACK" build
"$STACK" reset

step "smoke checks of the stack's wiring"
.venv/bin/python infra/local/smoke.py

step "drift check: the local stack vs the AWS deployment"
.venv/bin/python infra/local/drift.py

for suite in "${suites[@]}"; do
  # Every suite starts from a freshly deployed, empty stack.
  "$STACK" reset
  step "integration suite: $suite"
  cargo test --workspace --test "$suite"
done

# The browser tests: the gallery and the dashboard in real Chromium against a fresh stack.
"$STACK" reset
step "web: browser tests (Chromium via playwright-core)"
web/scripts/web.sh browser

step "all green in $((SECONDS / 60)) min $((SECONDS % 60)) s"
