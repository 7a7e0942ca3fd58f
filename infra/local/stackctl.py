#!/usr/bin/env python3
"""Helpers for infra/local/stack.sh that are easier with boto3 than with a shell.

Subcommands (all talk to the local emulator at $AWS_ENDPOINT_URL, never to AWS):
  bootstrap BINARY OUT          copy BINARY (debug info stripped) to OUT, mode 0755, for sam deploy to zip
  stub NAME OUT                 a `bootstrap` that only fails, for a function whose crate is missing
  ensure-bucket NAME            create the deployment artifacts bucket if absent
  fixups [--watch]              local fix-ups after `sam deploy` (infra/local/fixups.py)
  write-env                     write .local/stack.env and .local/watch.env from the stack outputs
  wait-health URL SECONDS       poll a health URL until it answers 200
  event-source FN on|off        enable or disable FN's event source mappings (e.g. `notify off`:
                                live notices stop; the browser tests must then fail)
  set-env FUNCTION NAME [VALUE] set (or with no VALUE remove) one environment variable of a
                                deployed function; the emulator recycles its warm processes, as
                                Lambda does. The suites use it to inject and lift faults. Prints the
                                old value. FUNCTION: a deployed name or a crate name (`thumbnail`).
  invoke FUNCTION [JSON|FILE]   invoke a function synchronously with a payload or a sample event
                                file, print its answer
  get-env FUNCTION              print a deployed function's environment as JSON (make proof
                                snapshots it and puts every knob back after each scenario)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import fixups
from stackenv import FUNCTIONS, LOCAL, PROXY_VAR, function_env, physical_ids, stack_outputs, update_function_env
from stackenv import client as emulator_client

STACK = os.environ.get("STACK_NAME", "safelight")
ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
REGION = os.environ.get("AWS_REGION", "us-east-1")
ISSUER_URL = os.environ.get("ISSUER_URL", "http://127.0.0.1:4590")
WATCH_ADDR = os.environ.get("WATCH_ADDR", "127.0.0.1:9000")
# The emulator's endpoint, region and test credentials: what write-env gives every local tool.
EMULATOR_ENV = {
    "AWS_ENDPOINT_URL": ENDPOINT,
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
}


def client(service: str):
    return emulator_client(service, ENDPOINT, REGION)


def write_bootstrap(out: Path, payload: bytes) -> None:
    """Writes `out` (mode 0755) unless it already holds `payload`: an unchanged binary keeps its
    file untouched, so `sam deploy` sees the same directory and skips the upload."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and out.read_bytes() == payload:
        out.chmod(0o755)
        return
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(payload)
    tmp.chmod(0o755)
    tmp.replace(out)


def cmd_bootstrap(binary: str, out: str) -> None:
    # Debug info would push a `dev` build past Lambda's 250 MB unzipped limit (which the emulator
    # enforces too); symbols stay, so backtraces keep function names.
    strip = shutil.which("strip")
    if strip:
        with tempfile.TemporaryDirectory() as tmp:
            stripped = Path(tmp) / "bootstrap"
            subprocess.run([strip, "--strip-debug", "-o", str(stripped), binary], check=True)
            write_bootstrap(Path(out), stripped.read_bytes())
    else:
        write_bootstrap(Path(out), Path(binary).read_bytes())


def cmd_stub(name: str, out: str) -> None:
    script = (
        "#!/bin/sh\n"
        f"echo 'safelight local stack: function {name} is not built (no crate functions/{name} in the workspace yet)' >&2\n"
        "exit 1\n"
    )
    write_bootstrap(Path(out), script.encode())


def cmd_ensure_bucket(name: str) -> None:
    s3 = client("s3")
    try:
        s3.head_bucket(Bucket=name)
    except Exception:
        s3.create_bucket(Bucket=name)


def cmd_fixups(*args: str) -> None:
    fixups.apply(client, STACK, WATCH_ADDR if "--watch" in args else None)


def shell_quote(value: str) -> str:
    if value and all(c.isalnum() or c in "-_./:@%+=," for c in value):
        return value
    return "'" + value.replace("'", "'\\''") + "'"


def cmd_write_env() -> None:
    cfn = client("cloudformation")
    out = stack_outputs(cfn, STACK)
    http_api, ws_api, ws_stage = out["HttpApiId"], out["WebSocketApiId"], out["WebSocketStageName"]
    ws_base = ENDPOINT.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    env = {
        **EMULATOR_ENV,
        "SAFELIGHT_STACK_NAME": STACK,
        # Emulator difference: APIs are served path-style under the emulator's port instead of on
        # {apiId}.execute-api.{region}.amazonaws.com (the HTTP API uses the $default stage).
        "SAFELIGHT_API_URL": f"{ENDPOINT}/_aws/execute-api/{http_api}",
        "SAFELIGHT_WS_URL": f"{ws_base}/_aws/execute-api/{ws_api}/{ws_stage}",
        "SAFELIGHT_WS_MANAGEMENT_URL": out["WebSocketManagementEndpoint"],
        "SAFELIGHT_ISSUER_URL": ISSUER_URL,
        "SAFELIGHT_TOKEN_URL": f"{ISSUER_URL}/dev/token",
        "SAFELIGHT_JWT_AUDIENCE": os.environ.get("JWT_AUDIENCE", "safelight"),
        "SAFELIGHT_ADMIN_SCOPE": os.environ.get("ADMIN_SCOPE", "safelight/admin"),
        "SAFELIGHT_BUCKET": out["BucketName"],
        "SAFELIGHT_IMAGES_TABLE": out["ImagesTableName"],
        "SAFELIGHT_CONTROL_TABLE": out["ControlTableName"],
        "SAFELIGHT_CONNECTIONS_TABLE": out["ConnectionsTableName"],
        "SAFELIGHT_NOTICES_TABLE": out["NoticesTableName"],
        "SAFELIGHT_THUMBNAILS_QUEUE_URL": out["ThumbnailsQueueUrl"],
        "SAFELIGHT_THUMBNAILS_DLQ_URL": out["ThumbnailsDlqUrl"],
        "SAFELIGHT_VARIANTS_QUEUE_URL": out["VariantsQueueUrl"],
        "SAFELIGHT_VARIANTS_DLQ_URL": out["VariantsDlqUrl"],
    }
    for logical, binary in FUNCTIONS.items():
        key = logical.replace("Function", "FunctionName")
        if key in out:
            env[f"SAFELIGHT_{binary.upper()}_FUNCTION"] = out[key]
    LOCAL.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by infra/local (make dev); shell-sourceable. Local emulator values only."]
    lines += [f"{k}={shell_quote(v)}" for k, v in env.items()]
    (LOCAL / "stack.env").write_text("\n".join(lines) + "\n")

    # The environment `cargo lambda watch --env-file` gives every function in proxy mode (MiniStack
    # does not forward the template's variables to a proxied function): the union of all functions'
    # variables (names do not clash: each function reads only its own) plus the emulator endpoint.
    lam = client("lambda")
    ids = physical_ids(cfn, STACK)
    watch_env: dict[str, str] = {}
    for logical in FUNCTIONS:
        if ids.get(logical):
            watch_env.update(function_env(lam, ids[logical]))
    watch_env.pop(PROXY_VAR, None)
    watch_env.update(EMULATOR_ENV)
    (LOCAL / "watch.env").write_text("".join(f"{k}={v}\n" for k, v in sorted(watch_env.items())))


def cmd_wait_health(url: str, seconds: str) -> None:
    deadline = time.monotonic() + float(seconds)
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except Exception:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {url}")
        time.sleep(0.1)


def resolve_function(function: str) -> str:
    """A crate name (`thumbnail`, `backfill`, …) as its deployed name; anything else as given."""
    logical = {b: lg for lg, b in FUNCTIONS.items()}.get(function)
    if not logical:
        return function
    name = physical_ids(client("cloudformation"), STACK).get(logical)
    if not name:
        sys.exit(f"function {function!r} is not deployed in stack {STACK}")
    return name


def cmd_event_source(binary: str, state: str) -> None:
    if state not in ("on", "off"):
        sys.exit("event-source FN on|off")
    if binary not in FUNCTIONS.values():
        sys.exit(f"unknown function {binary!r}; one of {sorted(FUNCTIONS.values())}")
    lam = client("lambda")
    mappings = lam.list_event_source_mappings(FunctionName=resolve_function(binary)).get("EventSourceMappings", [])
    if not mappings:
        sys.exit(f"function {binary!r} has no event source mapping")
    for m in mappings:
        lam.update_event_source_mapping(UUID=m["UUID"], Enabled=state == "on")


def cmd_set_env(function: str, name: str, value: str | None = None) -> None:
    """Sets (no value: removes) one variable; prints the previous value (empty if unset), so a
    test can put it back."""
    lam = client("lambda")
    function = resolve_function(function)
    env = function_env(lam, function)
    print(env.get(name, ""))
    want = dict(env)
    if value:
        want[name] = value
    else:
        want.pop(name, None)
    update_function_env(lam, function, env, want)


def cmd_get_env(function: str) -> None:
    print(json.dumps(function_env(client("lambda"), resolve_function(function))))


def cmd_invoke(function: str, payload: str = "{}") -> None:
    """Invokes synchronously with a JSON payload (or the sample event file it names); prints the
    answer."""
    if Path(payload).is_file():
        payload = Path(payload).read_text()
    out = client("lambda").invoke(FunctionName=resolve_function(function), Payload=payload.encode())
    body = out["Payload"].read().decode()
    if out.get("FunctionError"):
        sys.exit(f"{function} failed: {body}")
    print(body)


COMMANDS = {
    "bootstrap": cmd_bootstrap,
    "stub": cmd_stub,
    "ensure-bucket": cmd_ensure_bucket,
    "fixups": cmd_fixups,
    "write-env": cmd_write_env,
    "wait-health": cmd_wait_health,
    "event-source": cmd_event_source,
    "set-env": cmd_set_env,
    "invoke": cmd_invoke,
    "get-env": cmd_get_env,
}


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    if argv[0] not in COMMANDS:
        sys.exit(f"unknown subcommand {argv[0]}\n{__doc__}")
    COMMANDS[argv[0]](*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
