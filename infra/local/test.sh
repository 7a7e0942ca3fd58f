#!/usr/bin/env bash
# `make test` (and CI): everything, from a fresh clone, offline.
#   1. install what the machine lacks (apt packages only if missing, the pinned venv)
#   2. make lint (rustfmt, clippy -D warnings, cfn-lint, ESLint, sam validate --lint), then the offline
#      checks of infra/: template invariants, OpenAPI document against the routes, function crates
#      against the template's cargo-lambda builds (~1 s)
#   3. unit tests: every test target but the `safelight-e2e` suites (cargo-nextest, profile
#      `default` of .config/nextest.toml), then the doctests
#   4. the local stack (emulator + issuer + functions from infra/template.yaml), smoke checks of its
#      wiring, the drift check (local vs AWS deployment: documented parameter overrides only),
#      then each integration suite of the `safelight-e2e` crate (nextest profile `e2e`) with a
#      reset between suites
#   5. the browser side (web/): typecheck, Vitest unit tests, the production build and its JS size
#      budget; then, on a freshly reset stack, Playwright tests in Debian's Chromium
#   6. stop the test stack, also on failure (a `make dev` stack, if any, is left alone)
# The native functions are built with the `dev` profile (LOCAL_PROFILE), sharing the unit
# tests' artifacts: a cold run compiles the dependency graph once instead of twice.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=infra/local/own_stack.sh
source "$ROOT/infra/local/own_stack.sh"
export LOCAL_PROFILE="${LOCAL_PROFILE:-dev}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
E2E=safelight-e2e
# Its own stack, beside any `make dev` one, so running the tests never resets a stack someone is using.
own_stack test "${TEST_EMULATOR_PORT:-4567}" "${TEST_ISSUER_PORT:-4591}"
trap stop_own_stack EXIT

step "setup"
"$STACK" setup
# The tests run under cargo-nextest (preinstalled on the dev and CI machines).
cargo nextest --version >/dev/null 2>&1 || {
  echo "cargo-nextest is missing: install it with 'cargo install --locked cargo-nextest'" >&2
  exit 1
}

step "lint"
make --no-print-directory lint

step "offline checks of infra/ (template invariants, OpenAPI vs routes, functions vs template)"
.venv/bin/python -m unittest discover -s infra/tests -v

# The unit tests and the integration suites (the `safelight-e2e` crate's test targets) are told
# apart by the cargo-nextest profiles in .config/nextest.toml: `default` runs every unit test in
# parallel, `e2e` the suites. Every cargo call selects the whole workspace, so one feature
# resolution (one build of the dependency graph) serves the unit tests, the suites and the
# function binaries alike.
step "building the tests"
cargo nextest run --workspace --no-run

step "unit tests"
cargo nextest run --workspace
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

# One suite a directory of e2e/tests; every suite starts from a freshly deployed, empty stack.
for dir in e2e/tests/*/; do
  suite="$(basename "$dir")"
  "$STACK" reset
  step "integration suite: $suite"
  cargo nextest run --workspace --profile e2e -E "binary_id($E2E::$suite)"
done

# The browser tests: the gallery and the dashboard in real Chromium against a fresh stack.
"$STACK" reset
step "web: browser tests (Chromium via playwright-core)"
web/scripts/web.sh browser

step "all green in $((SECONDS / 60)) min $((SECONDS % 60)) s"
