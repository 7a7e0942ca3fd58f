#!/usr/bin/env python3
"""`make report`: release figures of the Lambda binaries `make package` built -> bench/RELEASE.md.

For every function and for the anchor (bench/hello-lambda: lambda_runtime echoing its event, the
same profile and target), in the same run:
  - cold start: the init duration, from spawning the release binary to its first
    `GET /runtime/invocation/next` on a local Lambda Runtime API served here (what Lambda reports
    as Init Duration), median of COLD_RUNS fresh processes;
  - warm handler time: from handing an invocation out on `/next` to its `/response`, median of
    WARM_RUNS invocations after the first, each with a real event against the local stack's S3,
    DynamoDB and API Gateway management API (`make dev`'s emulator; started here if it is not up);
    the processors render a fresh original each time;
  - the zips' sizes (dist/lambda/manifest.json).
The binaries are arm64 (what AWS runs); this machine runs them under qemu-user, which inflates
absolute times several-fold, so the report gives ratios to the anchor next to milliseconds.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "infra"), str(ROOT / "infra" / "local")]
from releasing import BUILD_DIR, env_with_tools  # noqa: E402 - make package's build, as infra/ names it
from releasing.package import target_dir  # noqa: E402
from runtime_api import RuntimeApi, spawn, stop  # noqa: E402
from stackenv import LOCAL, client, read_env  # noqa: E402 - the local stack's state, as infra/local reads it

MANIFEST = ROOT / "dist" / "lambda" / "manifest.json"
BUILD_INFO = ROOT / "dist" / "lambda" / "build.json"  # make package's duration and load
NOTES_MARK = "<!-- Notes below this line are kept by make report. -->"
OUT = ROOT / "bench" / "RELEASE.md"
# FUNCTIONS=upload,images limits the run to those functions.
COLD_RUNS = int(os.environ.get("COLD_RUNS", "5"))
WARM_RUNS = int(os.environ.get("WARM_RUNS", "5"))
SYSROOT = "/usr/aarch64-linux-gnu"
PHOTO = ROOT / "shared" / "tests" / "fixtures" / "photo-1024x768.jpg"
ANCHOR = "hello-lambda"


def log(msg: str) -> None:
    print(f"\033[1m[report]\033[0m {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------ prerequisites
def ensure_qemu() -> list[str]:
    """The command prefix that runs an aarch64 binary here (nothing on an arm64 host)."""
    if platform.machine() in ("aarch64", "arm64"):
        return []
    if not shutil.which("qemu-aarch64") or not Path(SYSROOT, "lib").exists():
        log("installing qemu-user and the arm64 glibc (apt) to run arm64 binaries on this x86_64 host")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
        subprocess.run(
            [*sudo, "apt-get", "install", "-y", "-qq", "qemu-user", "libc6-arm64-cross"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    return ["qemu-aarch64", "-L", SYSROOT]


def build_anchor() -> Path:
    log(f"building the anchor ({ANCHOR}) like the functions: cargo lambda build --release --arm64")
    subprocess.run(
        ["cargo", "lambda", "build", "--release", "--arm64", "--bin", ANCHOR],
        cwd=ROOT / "bench" / "hello-lambda",
        env=env_with_tools(),
        check=True,
    )
    return target_dir() / "lambda" / ANCHOR / "bootstrap"


def ensure_stack() -> bool:
    """Brings `make dev`'s stack up unless it answers; True when this run started it."""
    port = os.environ.get("EMULATOR_PORT", "4566")
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_ministack/health", timeout=2)
        if (LOCAL / "watch.env").exists():
            return False
    except OSError:
        pass
    log("bringing the local stack up (make dev) for the handlers' AWS calls")
    subprocess.run([str(ROOT / "infra" / "local" / "stack.sh"), "up"], check=True, stdout=subprocess.DEVNULL)
    return True


# ------------------------------------------------------------------- events
def load_event(name: str) -> dict:
    return json.loads((ROOT / "events" / name).read_text())


class Events:
    """A real event per invocation, against the local stack."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.lam = client("lambda", env["AWS_ENDPOINT_URL"], env["AWS_REGION"])
        self.owner = "report-" + uuid.uuid4().hex[:8]
        self.token = urllib.request.urlopen(f"{env['SAFELIGHT_TOKEN_URL']}?sub={self.owner}", timeout=10).read().decode().strip()

    def with_owner(self, event: dict) -> dict:
        claims = event.get("requestContext", {}).get("authorizer", {}).get("jwt", {}).get("claims")
        if claims is not None:
            claims["sub"] = self.owner
        return event

    def fresh_original(self) -> str:
        """Uploads the fixture through the stack's HTTP API (direct path): row + object."""
        req = urllib.request.Request(
            f"{self.env['SAFELIGHT_API_URL']}/api/images/upload",
            data=PHOTO.read_bytes(),
            method="POST",
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "image/jpeg"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())["image_id"]

    def sqs(self, fixture: str) -> dict:
        image_id = self.fresh_original()
        event = load_event(fixture)
        record = event["Records"][0]
        body = json.loads(record["body"])
        key = f"originals/{self.owner}/{image_id}"
        if "detail" in body:
            body["detail"]["object"]["key"] = key
            body["detail"]["bucket"]["name"] = self.env["SAFELIGHT_BUCKET"]
        else:
            body["Records"][0]["s3"]["object"]["key"] = key
            body["Records"][0]["s3"]["bucket"]["name"] = self.env["SAFELIGHT_BUCKET"]
        record["body"] = json.dumps(body)
        record["messageId"] = str(uuid.uuid4())
        return event

    def for_function(self, name: str) -> dict:
        if name == "upload":
            return self.with_owner(load_event("upload-presign.json"))
        if name == "images":
            return self.with_owner(load_event("images-list.json"))
        if name == "thumbnail":
            return self.sqs("sqs-thumbnails-eventbridge.json")
        if name == "variant":
            return self.sqs("sqs-variants-s3-notification.json")
        if name == "ws":
            return load_event("ws-ping.json")
        if name == "admin":
            return load_event("admin-processing-queue.json")
        if name == "sweeper":
            return {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
        if name == "backfill":
            # A dry run walks the stack's originals and rows every time (a real run would stop at
            # the run-once marker after the first).
            return load_event("backfill-dry-run.json")
        if name == "notify":
            event = load_event("notify-complete.json")
            for r in event["Records"]:
                for image in ("NewImage", "OldImage"):
                    if image in r["dynamodb"]:
                        r["dynamodb"][image]["owner_id"] = {"S": self.owner}
            return event
        return {"hello": "world"}

    def pause_processing(self, paused: bool) -> None:
        """The stack's own processors would race ours for the fresh originals: stop their queue
        sources while the report runs."""
        for m in self.lam.list_event_source_mappings()["EventSourceMappings"]:
            if ":sqs:" in m.get("EventSourceArn", ""):
                self.lam.update_event_source_mapping(UUID=m["UUID"], Enabled=not paused)


# ---------------------------------------------------------------- measuring
def invoke_ok(api: RuntimeApi, name: str, events: Events | None) -> float:
    """One invocation with a fresh event; its handler milliseconds. Fails on an error response."""
    event = events.for_function(name) if events else {"hello": "world"}
    secs, status, body = api.invoke(event)
    if status != 200:
        raise RuntimeError(f"{name}: the invocation failed: {body[:300]!r}")
    return secs * 1000


def measure(prefix, targets: dict[str, tuple[Path, dict, Events | None]], log_file) -> dict:
    """Cold starts and warm handler times of every target, interleaved: each round spawns (or
    invokes) every target once, in turn, so the anchor and the functions see the same machine
    load (on a shared machine the load drifts between rounds; a function measured after another
    would see a different one)."""
    inits: dict[str, list[float]] = {n: [] for n in targets}
    first: dict[str, list[float]] = {n: [] for n in targets}
    warm: dict[str, list[float]] = {n: [] for n in targets}
    for run in range(COLD_RUNS):
        log(f"cold round {run + 1}/{COLD_RUNS}: {', '.join(targets)}")
        for name, (binary, env, events) in targets.items():
            api = RuntimeApi()
            proc, start = spawn(prefix, binary, name, env, api, log_file)
            try:
                api.wait(lambda: api.first_next is not None, 60, f"{name}'s first /next")
                inits[name].append((api.first_next - start) * 1000)
                first[name].append(invoke_ok(api, name, events))
            finally:
                stop(proc, api)
    live: dict[str, tuple[subprocess.Popen, RuntimeApi]] = {}
    try:
        for name, (binary, env, events) in targets.items():
            api = RuntimeApi()
            proc, _ = spawn(prefix, binary, name, env, api, log_file)
            live[name] = (proc, api)
            api.wait(lambda: api.first_next is not None, 60, f"{name}'s first /next")
            invoke_ok(api, name, events)  # the first invocation is not a warm one
        for run in range(WARM_RUNS):
            log(f"warm round {run + 1}/{WARM_RUNS}")
            for name, (proc, api) in live.items():
                warm[name].append(invoke_ok(api, name, targets[name][2]))
    finally:
        for proc, api in live.values():
            stop(proc, api)
    return {
        name: {
            "init_ms": statistics.median(inits[name]),
            "init_all": inits[name],
            "first_ms": statistics.median(first[name]),
            "warm_ms": statistics.median(warm[name]),
            "warm_all": warm[name],
        }
        for name in targets
    }


def main() -> int:
    if not MANIFEST.exists():
        sys.exit("dist/lambda/manifest.json is missing: run make package first")
    manifest = json.loads(MANIFEST.read_text())
    only = set(filter(None, os.environ.get("FUNCTIONS", "").split(",")))
    if only:
        manifest = {k: v for k, v in manifest.items() if k in only}
    prefix = ensure_qemu()
    anchor_bin = build_anchor()
    started = ensure_stack()
    env = read_env("stack.env", "watch.env")
    fn_env = {k: v for k, v in env.items() if not k.startswith("SAFELIGHT_")}
    events = Events(env)
    events.pause_processing(True)
    LOCAL.mkdir(parents=True, exist_ok=True)
    results = {}
    try:
        with open(LOCAL / "logs" / "report-functions.log", "w") as log_file:
            targets: dict[str, tuple[Path, dict, Events | None]] = {ANCHOR: (anchor_bin, {}, None)}
            for name, info in sorted(manifest.items()):
                targets[name] = (BUILD_DIR / info["logical_id"] / "bootstrap", fn_env, events)
            log(f"{len(targets)} binaries (anchor first): {COLD_RUNS} cold starts and {WARM_RUNS} warm "
                "invocations each, interleaved round by round")
            results = measure(prefix, targets, log_file)
    finally:
        events.pause_processing(False)
        if started:
            subprocess.run([str(ROOT / "infra" / "local" / "stack.sh"), "down"], check=False)

    a = results[ANCHOR]
    rows = [
        f"| `{ANCHOR}` (anchor) | - | {Path(anchor_bin).stat().st_size / 1e6:.2f} | - | {a['init_ms']:.1f} | 1.00 | "
        f"{a['warm_ms']:.2f} | 1.00 | echo |"
    ]
    what = {
        "upload": "presign (`events/upload-presign.json`): PutItem + presigned PUT and POST",
        "images": "list (`events/images-list.json`): Query by owner",
        "thumbnail": "a fresh 1024x768 JPEG original -> the thumbnails (GET, render, PUTs, row updates)",
        "admin": "`GET /api/admin/processing-queue` (by_status counts, queue depths, breakers)",
        "sweeper": "a scheduled sweep (DLQ peeks, by_status queries)",
        "variant": "a fresh original -> display variants (GET, render, PUTs, row updates)",
        "ws": "`{\"action\":\"ping\"}` (PostToConnection to a gone connection, row delete)",
        "notify": "a `complete` stream record (notice stored, owner's connections queried)",
        "backfill": "a dry run (`events/backfill-dry-run.json`): lists originals, reads their rows",
    }
    for name, info in sorted(manifest.items()):
        r = results[name]
        arch = "aarch64" if info.get("machine") == "AArch64" else info.get("machine", "?")
        rows.append(
            f"| `{name}` | {info['zip_bytes'] / 1e6:.2f} | {info['unzipped_bytes'] / 1e6:.2f} | "
            f"{arch}, {info.get('max_glibc', '?')} | {r['init_ms']:.1f} | {r['init_ms'] / a['init_ms']:.2f} | "
            f"{r['warm_ms']:.2f} | {r['warm_ms'] / a['warm_ms']:.1f} | {what.get(name, '')} |"
        )
    build = ""
    if BUILD_INFO.exists():
        b = json.loads(BUILD_INFO.read_text())
        build = (
            f"\n`make package` that built them: {b['seconds'] / 60:.1f} min (`sam build` of {b['functions']} "
            f"functions, {'cold: no earlier arm64 build in target/' if b.get('cold') else 'warm: an earlier arm64 build was reused'}), "
            f"load average (1 min) {b['load_min']:.1f}-{b['load_max']:.1f}, median {b['load_median']:.1f}, "
            f"on {b.get('cpus', '?')} cores.\n"
        )
    notes = ""
    if OUT.exists() and NOTES_MARK in OUT.read_text():
        notes = OUT.read_text().split(NOTES_MARK, 1)[1]
    host = f"{platform.machine()}, {os.cpu_count()} cores, shared"
    runner = "qemu-aarch64 (user-mode emulation)" if prefix else "natively"
    text = f"""# Release figures (make report)

Generated by `make report` (`bench/release.py`) on {time.strftime('%Y-%m-%d', time.gmtime())} ({host}). The binaries
are the arm64 release builds of `make package` (`sam build`, cargo-lambda, `provided.al2023`),
run {runner} against a local Lambda Runtime API. The anchor is `bench/hello-lambda`, a
lambda_runtime function that echoes its event, built the same way and measured in the same run.

- **Cold start** = init duration: spawn to the first `GET /runtime/invocation/next` (median of
  {COLD_RUNS} fresh processes); it covers the runtime, configuration and AWS SDK set-up.
- Every round spawns (then invokes) the anchor and each function once, in turn, so all of them
  see the same load on a shared machine; the medians are over the rounds.
- **Warm handler** = `/next` handing the event out to its `/response` (median of {WARM_RUNS} invocations
  after the first), each a real event against the local emulator's S3, DynamoDB and API Gateway
  management API (plain http on 127.0.0.1); the processors render a fresh original each time.
- Absolute times are inflated by {'emulation and ' if prefix else ''}the machine's load; compare ratios. Zip sizes
  are exact (`dist/lambda/manifest.json`).

Reproduce: `make package && make report` (`EMULATOR_PORT` etc. pick the local stack; `FUNCTIONS=a,b`
limits the run). The ELF column is what `make package` checked: the architecture and the newest
glibc symbol version the binary needs (Lambda's `provided.al2023` has glibc 2.34).
{build}
| function | zip MB | unzipped MB | ELF, newest glibc | cold start ms | x anchor | warm handler ms | x anchor | warm event |
|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + f"\n\n{NOTES_MARK}{notes or chr(10)}"
    OUT.write_text(text)
    print(text)
    (LOCAL / "release-figures.json").write_text(json.dumps(results, indent=2))
    log(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
