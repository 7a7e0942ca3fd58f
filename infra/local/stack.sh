#!/usr/bin/env bash
# Safelight's local stack: the pinned emulator (MiniStack) running infra/template.yaml unchanged,
# a local OpenID issuer, and native builds of the functions. Everything binds 127.0.0.1 and every
# process it starts is recorded in .local/*.pid so `down` stops exactly those.
#
#   stack.sh setup     install what a fresh machine lacks (apt packages, the project venv)
#   stack.sh up        setup + start + build + deploy + print URLs and tokens   (make dev)
#   stack.sh start     start the emulator and the issuer if they are not running
#   stack.sh build     build the functions natively into .local/functions/<fn>/bootstrap
#   stack.sh web       build the web app (web/ -> web/dist, served by the issuer at the Web URL)
#   stack.sh deploy    sam deploy to the emulator, local fix-ups, write .local/stack.env
#   stack.sh reset     wipe the emulator's state (POST /_ministack/reset) and deploy again
#   stack.sh watch     proxy the functions to `cargo lambda watch` (foreground)   (make watch)
#   stack.sh tokens    print ready-to-paste tokens for demo / other / admin
#   stack.sh down      stop what `start` / `watch` started
#
# Knobs (environment): LOCAL_PROFILE (cargo profile of the native build: `dev`, the default, shares
# its artifacts with `cargo test`; `local` is optimised without fat LTO, for benchmarks),
# FAULTS (SAFELIGHT_FAULTS for the processors), LOG_LEVEL, EMULATOR_PORT (4566), ISSUER_PORT (4590),
# WATCH=1 (make `up` end in watch mode), STRICT_IAM (default 1: the emulator enforces IAM, each
# function runs with its execution role's policies from the template, so a missing permission fails
# here as on AWS; 0 turns it off; applies when the emulator starts).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="${SAFELIGHT_LOCAL_DIR:-$ROOT/.local}"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
EMULATOR_PORT="${EMULATOR_PORT:-4566}"
ISSUER_PORT="${ISSUER_PORT:-4590}"
WATCH_PORT="${WATCH_PORT:-9000}"
STACK_NAME="${STACK_NAME:-safelight}"
LOCAL_PROFILE="${LOCAL_PROFILE:-dev}"
LOG_LEVEL="${LOG_LEVEL:-INFO}"
FAULTS="${FAULTS:-}"
JWT_AUDIENCE="${JWT_AUDIENCE:-safelight}"
ADMIN_SCOPE="${ADMIN_SCOPE:-safelight/admin}"
ARTIFACTS_BUCKET="safelight-local-artifacts"
FUNCTIONS=(upload images thumbnail variant ws notify admin sweeper backfill)

export AWS_ENDPOINT_URL="http://127.0.0.1:$EMULATOR_PORT"
export AWS_REGION="us-east-1" AWS_DEFAULT_REGION="us-east-1"
# Test credentials for the emulator; never a real profile.
export AWS_ACCESS_KEY_ID="test" AWS_SECRET_ACCESS_KEY="test"
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE
export ISSUER_URL="http://127.0.0.1:$ISSUER_PORT"
export STACK_NAME JWT_AUDIENCE ADMIN_SCOPE SAFELIGHT_LOCAL_DIR="$LOCAL"
export WATCH_ADDR="127.0.0.1:$WATCH_PORT"
# SAM_CLI_POLL_DELAY: the emulator finishes a stack in well under a second; poll accordingly.
export SAM_CLI_TELEMETRY=0 SAM_CLI_POLL_DELAY=0.5

log() { printf '\033[1m[local]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[local] %s\033[0m\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ setup
setup() {
  local missing=()
  command -v cc >/dev/null || missing+=(build-essential)
  command -v cmake >/dev/null || missing+=(cmake)
  command -v nasm >/dev/null || missing+=(nasm)
  command -v curl >/dev/null || missing+=(curl)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  if ((${#missing[@]})); then
    log "installing apt packages: ${missing[*]}"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  local req="$ROOT/infra/local/requirements.txt"
  local stamp="$VENV/.safelight-requirements"
  local want; want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ -x "$PY" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  if [ ! -x "$PY" ]; then
    log "creating the project venv (.venv)"
    python3 -m venv "$VENV"
  fi
  # Idempotent: pip only fetches what the pinned set lacks.
  if ! "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$req"; then
    die "pip install -r infra/local/requirements.txt failed"
  fi
  echo "$want" >"$stamp"
}

# ------------------------------------------------------------- processes
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_emulator() {
  mkdir -p "$LOCAL/logs" "$LOCAL/tmp" "$LOCAL/state"
  if pid_alive "$LOCAL/ministack.pid" && curl -fsS "$AWS_ENDPOINT_URL/_ministack/health" >/dev/null 2>&1; then
    return 0
  fi
  if curl -fsS "$AWS_ENDPOINT_URL/_ministack/health" >/dev/null 2>&1; then
    die "something else already answers on $AWS_ENDPOINT_URL (not started by this checkout); stop it or set EMULATOR_PORT"
  fi
  log "starting the emulator (MiniStack) on $AWS_ENDPOINT_URL"
  # A clean environment: MiniStack hands its own environment to every function process.
  # AWS_ENDPOINT_URL in it is what points the functions' SDKs back at the emulator.
  # IOT_MTLS_ENABLED=0: otherwise an MQTT listener opens on 0.0.0.0:8883.
  # infra/local/emulator.py is MiniStack's own entry point plus the shims the unchanged template
  # needs (each names the emulator difference; today: metric-math alarms).
  setsid env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 \
    BIND_HOST=127.0.0.1 GATEWAY_PORT="$EMULATOR_PORT" IOT_MTLS_ENABLED=0 SFTP_ENABLED=0 \
    AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
    AWS_DEFAULT_REGION="$AWS_REGION" MINISTACK_HOST=127.0.0.1 \
    TMPDIR="$LOCAL/tmp" STATE_DIR="$LOCAL/state" AUTH="$([ "${STRICT_IAM:-1}" = 1 ] && echo true || echo false)" \
    "$PY" "$ROOT/infra/local/emulator.py" >>"$LOCAL/logs/ministack.log" 2>&1 </dev/null &
  echo $! >"$LOCAL/ministack.pid"
  "$PY" "$ROOT/infra/local/stackctl.py" wait-health "$AWS_ENDPOINT_URL/_ministack/health" 60 \
    || die "the emulator did not become healthy; see .local/logs/ministack.log"
}

start_issuer() {
  mkdir -p "$LOCAL/logs"
  if pid_alive "$LOCAL/issuer.pid" && curl -fsS "$ISSUER_URL/health" >/dev/null 2>&1; then
    return 0
  fi
  if curl -fsS "$ISSUER_URL/health" >/dev/null 2>&1; then
    die "something else already answers on $ISSUER_URL; stop it or set ISSUER_PORT"
  fi
  log "starting the local OpenID issuer on $ISSUER_URL"
  # WEB_DIR: the built demo gallery and admin dashboard (web/scripts/web.sh build -> web/dist).
  ISSUER_PORT="$ISSUER_PORT" WEB_DIR="$ROOT/web/dist" setsid "$PY" "$ROOT/infra/local/issuer.py" \
    >>"$LOCAL/logs/issuer.log" 2>&1 </dev/null &
  echo $! >"$LOCAL/issuer.pid"
  "$PY" "$ROOT/infra/local/stackctl.py" wait-health "$ISSUER_URL/health" 30 \
    || die "the issuer did not start; see .local/logs/issuer.log"
}

start() { start_emulator; start_issuer; }

stop_pidfile() {
  local file="$1" what="$2"
  [ -f "$file" ] || return 0
  local pid; pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $what (pid $pid)"
    # Each was started with setsid: its process group holds its children (function processes).
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

down() {
  stop_pidfile "$LOCAL/watch.pid" "cargo lambda watch"
  stop_pidfile "$LOCAL/issuer.pid" "the issuer"
  stop_pidfile "$LOCAL/ministack.pid" "the emulator"
}

# ----------------------------------------------------------------- build
# Native x86_64 binaries for the emulator (it runs provided.al2023 functions as local processes).
# Crates not in the workspace yet get a stub bootstrap that fails every invocation, so the whole
# template deploys while the functions are being written. Stubs live only in .local/.
# The function binaries the workspace has (of FUNCTIONS), one per line.
present_functions() {
  local bins
  bins="$(cargo metadata --no-deps --format-version 1 --manifest-path "$ROOT/Cargo.toml" \
    | "$PY" -c 'import json,sys; print(" ".join(t["name"] for p in json.load(sys.stdin)["packages"] for t in p["targets"] if "bin" in t["kind"]))')"
  for fn in "${FUNCTIONS[@]}"; do
    if [[ " $bins " == *" $fn "* ]]; then echo "$fn"; fi
  done
}

build() {
  local present=() args=()
  mapfile -t present < <(present_functions)
  for fn in "${present[@]}"; do args+=(--bin "$fn"); done
  local target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
  local profile_dir="$LOCAL_PROFILE"
  [ "$LOCAL_PROFILE" = dev ] && profile_dir=debug
  if ((${#present[@]})); then
    log "building ${present[*]} (cargo profile $LOCAL_PROFILE)"
    # --workspace: the same package selection (hence the same feature resolution) as `make test`,
    # so the binaries reuse the tests' dependency artifacts instead of rebuilding the SDK with
    # another feature set. The `faults` feature (SAFELIGHT_FAULTS, the fault-injection decorator)
    # is for local builds only: `make package` builds without it and checks the zips.
    (cd "$ROOT" && cargo build --profile "$LOCAL_PROFILE" --workspace --features safelight-shared/faults "${args[@]}")
  fi
  # The template's CodeUri is ../functions/<fn> (the crate, which `sam build` compiles with
  # cargo-lambda); the local deploy's copy of the template resolves it to $LOCAL/functions/<fn>,
  # a directory holding only the native `bootstrap`, which `sam deploy` zips as it is.
  for fn in "${FUNCTIONS[@]}"; do
    local out="$LOCAL/functions/$fn/bootstrap"
    if [[ " ${present[*]:-} " == *" $fn "* ]]; then
      "$PY" "$ROOT/infra/local/stackctl.py" bootstrap "$target_dir/$profile_dir/$fn" "$out"
    else
      log "no crate for '$fn' yet: deploying a stub that fails when invoked"
      "$PY" "$ROOT/infra/local/stackctl.py" stub "$fn" "$out"
    fi
  done
}

# ---------------------------------------------------------------- deploy
deploy() {
  local watch_flag="${1:-}"
  mkdir -p "$LOCAL/deploy"
  # A byte-identical copy of the template, so its CodeUri (../functions/<fn>, relative to the
  # template) resolves to the native builds in $LOCAL/functions.
  cp "$ROOT/infra/template.yaml" "$LOCAL/deploy/template.yaml"
  "$PY" "$ROOT/infra/local/stackctl.py" ensure-bucket "$ARTIFACTS_BUCKET"
  local params=(
    "JwtIssuer=$ISSUER_URL"
    "JwtAudience=$JWT_AUDIENCE"
    # The scope the issuer puts in admin tokens. The emulator enforces the admin routes'
    # AuthorizationScopes as AWS does (403 {"message":"Forbidden"} before the function runs).
    "AdminScope=$ADMIN_SCOPE"
    # Emulator difference: the API stages' AccessLogSettings (JSON access logs) are stored as on
    # AWS but the emulator writes no access log lines; the function logs are real. The account's
    # API Gateway log role (ApiGatewayLogRole=create) is only recorded.
    # Native binaries: the emulator runs functions as local processes on this x86_64 machine.
    "Architecture=x86_64"
    # Emulator difference: the management API is path-style under the emulator's port.
    "WebSocketEndpointOverride=$AWS_ENDPOINT_URL/_aws/execute-api"
    # Emulator difference: its CloudFormation has no AWS::CloudFront::PublicKey / KeyGroup (the
    # deploy is refused), and its CloudFront serves neither an S3 origin nor signed URLs. So no
    # distribution locally: download URLs are S3 presigned GETs, stable per window the same way.
    "Delivery=s3"
    "LogLevel=$LOG_LEVEL"
    # Browsers load the web app (web/dist) from the issuer's origin and call the API and the
    # bucket cross-origin: exactly that origin (by address and by name), never `*`.
    "AllowedOrigins=$ISSUER_URL,http://localhost:$ISSUER_PORT"
  )
  [ -n "$FAULTS" ] && params+=("Faults=$FAULTS")
  log "deploying infra/template.yaml to the emulator (stack $STACK_NAME)"
  (cd "$LOCAL/deploy" && "$VENV/bin/sam" deploy \
    --template-file template.yaml \
    --stack-name "$STACK_NAME" \
    --s3-bucket "$ARTIFACTS_BUCKET" --s3-prefix "$STACK_NAME" \
    --region "$AWS_REGION" \
    --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
    --parameter-overrides "${params[@]}" \
    --no-confirm-changeset --no-fail-on-empty-changeset --no-progressbar \
    >"$LOCAL/logs/sam-deploy.log" 2>&1) || {
    tail -n 40 "$LOCAL/logs/sam-deploy.log" >&2
    # An emulator started before infra/local/emulator.py existed lacks its shims.
    if grep -q "Properties.Metrics" "$LOCAL/logs/sam-deploy.log"; then
      log "this emulator was started without infra/local/emulator.py's shims: run stack.sh down, then start again"
    fi
    die "sam deploy failed (full log: .local/logs/sam-deploy.log)"
  }
  "$PY" "$ROOT/infra/local/stackctl.py" fixups $watch_flag
  "$PY" "$ROOT/infra/local/stackctl.py" write-env
  log "wrote ${LOCAL#$ROOT/}/stack.env"
}

reset() {
  log "resetting the emulator's state"
  curl -fsS -X POST "$AWS_ENDPOINT_URL/_ministack/reset" >/dev/null || die "reset failed: is the stack up (make dev)?"
  local flag=""; pid_alive "$LOCAL/watch.pid" && flag="--watch"
  deploy $flag
}

# ---------------------------------------------------------------- tokens
token() { curl -fsS "$ISSUER_URL/dev/token?user=$1"; }

tokens() {
  # shellcheck disable=SC1091
  . "$LOCAL/stack.env"
  cat <<EOF

  Safelight local stack is up.
    API        $SAFELIGHT_API_URL
    WebSocket  $SAFELIGHT_WS_URL   (connect with ?token=<token>)
    Issuer     $SAFELIGHT_ISSUER_URL   (tokens: $SAFELIGHT_TOKEN_URL?user=demo|other|admin)
    Web        $SAFELIGHT_ISSUER_URL/   (gallery, signed in as the demo user; ?user=other|admin or ?sub=<anyone>)
               $SAFELIGHT_ISSUER_URL/admin/processing/   (processing queue dashboard, as the admin user)
    Env file   .local/stack.env

  Tokens (12 h):
    export API=$SAFELIGHT_API_URL
    export DEMO_TOKEN=$(token demo)
    export OTHER_TOKEN=$(token other)
    export ADMIN_TOKEN=$(token admin)

  Try:  curl -s -X POST "\$API/api/images/upload" -H "Authorization: Bearer \$DEMO_TOKEN" \\
          -H 'Content-Type: application/json' -d '{"filename":"cat.jpg","content_type":"image/jpeg","size":12345}'
  Stop: make down

EOF
}

# ------------------------------------------------------------------- web
# The demo gallery and admin dashboard (web/): npm ci + vite build into web/dist when a source
# changed. A failure here (no Node.js) leaves the API usable, so it warns instead of stopping.
web() {
  [ -x "$ROOT/web/scripts/web.sh" ] || return 0
  if ! "$ROOT/web/scripts/web.sh" build; then
    log "web/ was not built (see above): the API works, the Web URL serves nothing until it is"
  fi
}

# ----------------------------------------------------------------- watch
watch() {
  [ -f "$LOCAL/stack.env" ] || die "the stack is not deployed: run make dev first"
  command -v "$VENV/bin/cargo-lambda" >/dev/null || die "cargo-lambda missing from .venv: run make dev"
  "$PY" "$ROOT/infra/local/stackctl.py" fixups --watch
  "$PY" "$ROOT/infra/local/stackctl.py" write-env
  log "functions now proxy to cargo lambda watch on $WATCH_ADDR (make dev restores native mode)"
  log "cargo lambda watch --env-file .local/watch.env (Ctrl-C to stop)"
  cd "$ROOT"
  # Build once up front (cargo lambda watch uses the dev profile) so the first invocation does not
  # wait for a cold compile.
  local args=()
  for fn in $(present_functions); do args+=(--bin "$fn"); done
  if ((${#args[@]})); then cargo build --workspace "${args[@]}"; fi
  # setsid: its own process group, so `down` (or Ctrl-C here) stops it and the functions it runs.
  PATH="$VENV/bin:$PATH" setsid cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$WATCH_PORT" \
    --env-file "$LOCAL/watch.env" </dev/null &
  echo $! >"$LOCAL/watch.pid"
  trap 'stop_pidfile "$LOCAL/watch.pid" "cargo lambda watch"' EXIT INT TERM
  wait || true
}

up() {
  setup
  web
  start
  build
  if [ "${WATCH:-0}" = 1 ]; then deploy --watch; else deploy; fi
  tokens
  if [ "${WATCH:-0}" = 1 ]; then watch; fi
}

cmd="${1:-up}"; shift || true
case "$cmd" in
  setup|start|build|web|deploy|reset|tokens|watch|down|up) "$cmd" "$@" ;;
  *) die "unknown command '$cmd' (setup|up|start|build|web|deploy|reset|watch|tokens|down)" ;;
esac
