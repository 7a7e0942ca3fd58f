# Safelight - one verb, one job. `make dev` and `make test` are the two you need.
#
#   make dev            the whole stack, offline: emulator + issuer + functions (WATCH=1: hot reload)
#   make down           stop everything `make dev` / `make watch` started
#   make reset          wipe the local stack's state and deploy again
#   make watch          route invocations to `cargo lambda watch` (hot reload)
#   make invoke FN=upload EVENT=events/upload-presign.json   invoke through `cargo lambda watch`
#   make lint           rustfmt, clippy -D warnings, cfn-lint, sam validate --lint
#   make test           what CI runs: lint, unit tests, integration tests against the local stack
#   make bench          benchmarks (bench/run.sh)
#   make package        Lambda zips for AWS (arm64, release) in target/lambda/<fn>/bootstrap.zip
#   make deploy         sam deploy --guided to your AWS account (after make package)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

STACK := infra/local/stack.sh
VENV := .venv
FN ?=
EVENT ?=

.PHONY: help dev down reset watch invoke lint test bench package deploy setup

help:
	@sed -n '2,13p' Makefile | sed 's/^# \{0,1\}//'

setup:
	@$(STACK) setup

dev:
	@$(STACK) up

down:
	@$(STACK) down

reset:
	@$(STACK) reset

watch:
	@WATCH=1 $(STACK) up

invoke:
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke FN=<function> EVENT=events/<file>.json" >&2; exit 2; }
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda invoke "$(FN)" --data-file "$(EVENT)" \
	  --invoke-address 127.0.0.1 --invoke-port "$${WATCH_PORT:-9000}"

lint: setup
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint infra/template.yaml
	SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam validate --lint --template-file infra/template.yaml --region us-east-1 >/dev/null
	@if command -v cargo-deny >/dev/null; then cargo deny check licenses bans sources; \
	  else echo "cargo-deny not installed: skipping the deny.toml checks"; fi

test:
	@infra/local/test.sh

bench:
	@bash bench/run.sh
	@bash bench/upload.sh

package: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --arm64 --output-format zip \
	  $$(for f in functions/*/Cargo.toml; do printf -- '--package %s ' "$$(basename "$$(dirname "$$f")")"; done)
	@ls -l target/lambda/*/bootstrap.zip

# Real AWS: needs credentials, an OpenID issuer (e.g. a Cognito user pool) and `make package` first.
deploy:
	SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam deploy --guided --template-file infra/template.yaml --config-file samconfig.toml
