# shellcheck shell=bash
# Sourced by infra/local/test.sh (`make test`) and bench/proof.sh (`make proof`), after they set
# ROOT: a local stack of the caller's own beside any `make dev` one (its own state dir .local/NAME
# and ports; the Rust suites find it through SAFELIGHT_STACK_ENV), timed step banners, and the stop
# of that stack on exit.
#   own_stack NAME EMULATOR_PORT ISSUER_PORT   point stack.sh at the stack NAME; start the clock
#   step TEXT...                                a banner with the time since own_stack
#   trap stop_own_stack EXIT                    stop the stack on exit, also on failure (same status)
STACK="$ROOT/infra/local/stack.sh"

own_stack() {
  OWN_STACK="$1"
  export SAFELIGHT_LOCAL_DIR="$ROOT/.local/$1"
  export EMULATOR_PORT="$2" ISSUER_PORT="$3"
  export SAFELIGHT_STACK_ENV="$SAFELIGHT_LOCAL_DIR/stack.env"
  SECONDS=0
}

step() { printf '\n\033[1m==> [%dm%02ds] %s\033[0m\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

stop_own_stack() {
  local rc=$?
  trap - EXIT
  step "stopping the $OWN_STACK stack"
  "$STACK" down || true
  exit "$rc"
}
