# Safelight - one verb, one job. `make dev` and `make test` are the two you need.
#
#   make dev            the whole stack, offline: emulator + issuer + functions (WATCH=1: hot reload)
#   make down           stop everything `make dev` / `make watch` started
#   make reset          wipe the local stack's state and deploy again
#   make watch          route invocations to `cargo lambda watch` (hot reload)
#   make invoke FN=upload EVENT=events/upload-presign.json   invoke through `cargo lambda watch`
#   make lint           rustfmt, clippy -D warnings, cfn-lint, ESLint (web), sam validate --lint
#   make test           what CI runs: lint, unit tests, integration tests against the local stack
#   make bench          benchmarks (bench/run.sh)
#   make proof          load, faults, kills and an outage against a local stack -> RELIABILITY.md
#   make simulate       seeded schedules of the pipeline against its invariants (SEEDS=, FROM=, SEED= to replay)
#   make package        sam build (cargo-lambda, release, arm64) + checks; zips in dist/lambda/
#   make deploy         package, then sam deploy (guided the first time, samconfig.toml after), then
#                       the migration of existing originals (infra/post_deploy.py)
#   make destroy        empty the bucket and delete the AWS stack (asks first)
#   make deploy-rehearsal   make deploy (guided) and make destroy against `make dev`'s emulator
#   make report         release figures (cold start, warm handler, zip sizes) -> bench/RELEASE.md
#   make backfill       the migration of existing originals on the local stack (FORCE=1: run again)
#   make backfill-dry-run   what the migration would do, and its cost; changes nothing

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

STACK := infra/local/stack.sh
VENV := .venv
FN ?=
EVENT ?=

.PHONY: help dev down reset watch invoke lint test bench proof simulate package deploy destroy deploy-rehearsal report setup backfill backfill-dry-run

help:
	@sed -n '2,19p' Makefile | sed 's/^# \{0,1\}//'

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
	web/scripts/web.sh lint
	SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam validate --lint --template-file infra/template.yaml --region us-east-1 >/dev/null
	@if command -v cargo-deny >/dev/null; then cargo deny check licenses bans sources; \
	  else echo "cargo-deny not installed: skipping the deny.toml checks"; fi

test:
	@infra/local/test.sh

bench:
	@bash bench/run.sh
	@bash bench/upload.sh

# Not part of `make test`: ~15 min on 2 cores once built (bench/proof.sh says what it does).
proof:
	@bash bench/proof.sh

# The deterministic simulation (sim/): the real processing, sweeper and retry code over in-memory
# ports with a virtual clock; `make test` runs 2000 schedules of it.
simulate:
	@if [ -n "$(SEED)" ]; then cargo run --quiet -p safelight-sim -- --seed "$(SEED)" --trace; \
	  else cargo run --quiet -p safelight-sim -- --seeds "$${SEEDS:-5000}" --from "$${FROM:-1}"; fi

# One zip per function crate under functions/ (each must be a template function built by SAM's
# rust-cargolambda method: `sam build` and `make package` are the same build).
package: setup
	@$(VENV)/bin/python infra/release.py package

# Real AWS: needs credentials and an OpenID issuer (e.g. a Cognito user pool). See README.
deploy: package
	@$(VENV)/bin/python infra/release.py deploy
	@$(VENV)/bin/python infra/post_deploy.py

destroy: setup
	@$(VENV)/bin/python infra/release.py destroy

# No account needed: the deploy tooling (guided first run, post-deploy, repeat deploy, destroy)
# against `make dev`'s emulator, from a scratch copy (your samconfig.toml is untouched). ~2 min.
deploy-rehearsal: setup
	@$(VENV)/bin/python infra/local/rehearse_deploy.py

report: package
	@$(VENV)/bin/python bench/release.py

# The migration against the local stack (`make dev`), with a progress bar; Ctrl-C stops after the
# page in hand and a second `make backfill` resumes.
BACKFILL := cargo run --quiet -p safelight-cli --bin safelight-backfill -- --stack-env "$${SAFELIGHT_STACK_ENV:-.local/stack.env}"
backfill:
	@$(BACKFILL) $(if $(FORCE),--force,)

backfill-dry-run:
	@$(BACKFILL) --dry-run
