#!/usr/bin/env bash
# The browser side's steps, for infra/local/stack.sh (make dev) and infra/local/test.sh (make test).
# Idempotent; each installs what it needs.
#
#   web.sh setup     check Node (>= 20.19), `npm ci` when package-lock.json changed
#   web.sh build     setup + typecheck-free production build into web/dist when a source changed
#   web.sh lint      setup + ESLint (eslint.config.js: TypeScript + React hooks rules), no warnings
#   web.sh unit      setup + lint + typecheck + Vitest unit tests + the JS size budget
#   web.sh browser   setup + Debian's chromium (apt, if missing) + build + the test photos +
#                    Playwright tests against the stack in $SAFELIGHT_STACK_ENV
#   web.sh photos    fetch the browser tests' photos (Debian's mate-backgrounds) into web/.cache
#   web.sh figures   the delivery figures (bytes and requests of a 137-photo gallery's first and
#                    second load, now and an approximation of before) against $SAFELIGHT_STACK_ENV
#                    (a make dev stack by default); not part of make test; writes test-results/
set -euo pipefail

WEB="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(cd "$WEB/.." && pwd)"
NODE_MIN="20.19.0"

log() { printf '\033[1m[web]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[web] %s\033[0m\n' "$*" >&2; exit 1; }

apt_install() {
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null 2>&1; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
  fi
}

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

setup() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    die "Node.js >= $NODE_MIN and npm are needed for web/ (Debian's nodejs is older: install Node 20 or 22 from nodejs.org or your distribution's backports)"
  fi
  local have; have="$(node -p 'process.versions.node')"
  version_ge "$have" "$NODE_MIN" || die "Node.js $have is too old for Vite 8: need >= $NODE_MIN"
  local want stamp="$WEB/node_modules/.safelight-lock"
  want="$(sha256sum "$WEB/package-lock.json" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  log "npm ci (web/package-lock.json)"
  (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
}

# Newest modification time of the build's inputs vs. the output's stamp.
stale() {
  local stamp="$WEB/dist/.built"
  [ -f "$stamp" ] || return 0
  [ -n "$(find "$WEB/app" "$WEB/packages/client/src" "$WEB/packages/react/src" "$WEB/vite.config.ts" \
      "$WEB/package-lock.json" -newer "$stamp" -type f -print -quit)" ]
}

build() {
  setup
  if stale; then
    log "building web/dist (vite)"
    (cd "$WEB" && npx vite build --logLevel warn)
    touch "$WEB/dist/.built"
  fi
}

lint() {
  setup
  (cd "$WEB" && npx eslint --max-warnings 0 .)
}

unit() {
  lint
  (cd "$WEB" && npx tsc -b packages/client packages/react && npx tsc -p tsconfig.json --noEmit)
  (cd "$WEB" && npx vitest run --config vitest.config.ts)
  build
  (cd "$WEB" && node scripts/size.mjs)
}

# Five real photos (nature shots from Debian's mate-backgrounds, GPL-2+/CC: see its copyright
# file in web/.cache/photos) for the browser tests; fetched once with apt, kept in web/.cache.
PHOTOS=(nature/FreshFlower.jpg nature/GreenMeadow.jpg nature/Aqua.jpg nature/Garden.jpg nature/LadyBird.jpg)
photos() {
  local dir="$WEB/.cache/photos"
  local ok=1
  for p in "${PHOTOS[@]}"; do [ -s "$dir/$(basename "$p")" ] || ok=0; done
  [ "$ok" = 1 ] && return 0
  log "fetching the test photos (apt-get download mate-backgrounds, once)"
  local tmp; tmp="$(mktemp -d)"
  (cd "$tmp" && { apt-get download mate-backgrounds >/dev/null 2>&1 || { apt-get update -qq && apt-get download mate-backgrounds >/dev/null; }; } \
    && dpkg-deb -x mate-backgrounds_*.deb x)
  mkdir -p "$dir"
  for p in "${PHOTOS[@]}"; do cp "$tmp/x/usr/share/backgrounds/mate/$p" "$dir/"; done
  cp "$tmp/x/usr/share/doc/mate-backgrounds/copyright" "$dir/COPYRIGHT" 2>/dev/null || true
  rm -rf "$tmp"
}

browser() {
  setup
  command -v chromium >/dev/null || { log "installing Debian's chromium (apt)"; apt_install chromium; }
  build
  photos
  [ -n "${SAFELIGHT_STACK_ENV:-}" ] && [ -f "$SAFELIGHT_STACK_ENV" ] \
    || die "SAFELIGHT_STACK_ENV must name a deployed stack's env file (make test sets it)"
  (cd "$WEB" && npx vitest run --config vitest.browser.config.ts)
}

figures() {
  setup
  command -v chromium >/dev/null || { log "installing Debian's chromium (apt)"; apt_install chromium; }
  build
  photos
  export SAFELIGHT_STACK_ENV="${SAFELIGHT_STACK_ENV:-$ROOT/.local/stack.env}"
  [ -f "$SAFELIGHT_STACK_ENV" ] || die "no stack at $SAFELIGHT_STACK_ENV: run make dev first"
  (cd "$WEB" && SAFELIGHT_DELIVERY_FIGURES=1 npx vitest run --config vitest.browser.config.ts tests/browser/delivery-figures.test.ts)
}

cmd="${1:-build}"; shift || true
case "$cmd" in
  setup|build|lint|unit|browser|photos|figures) "$cmd" "$@" ;;
  *) die "unknown command '$cmd' (setup|build|lint|unit|browser|photos|figures)" ;;
esac
