"""A local Lambda Runtime API (2018-06-01) for one function process, for `make report`
(bench/release.py): it spawns the bootstrap as Lambda would, hands it events on `/next` and
timestamps its init and each invocation."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class RuntimeApi:
    """The Lambda Runtime API (2018-06-01) for one process: hands out queued events on `/next`,
    timestamps what the process does."""

    def __init__(self) -> None:
        self.events: list[bytes] = []
        self.cond = threading.Condition()
        self.first_next: float | None = None
        self.handed_out: dict[str, float] = {}
        self.done: dict[str, tuple[float, int, bytes]] = {}
        self.init_error: bytes | None = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if not self.path.endswith("/runtime/invocation/next"):
                    return self._reply(404)
                now = time.perf_counter()
                with api.cond:
                    if api.first_next is None:
                        api.first_next = now
                    api.cond.notify_all()
                    while not api.events:
                        api.cond.wait()
                    body = api.events.pop(0)
                    rid = str(uuid.uuid4())
                    api.handed_out[rid] = time.perf_counter()
                deadline = int(time.time() * 1000) + 60_000
                self._reply(
                    200,
                    body,
                    {
                        "Lambda-Runtime-Aws-Request-Id": rid,
                        "Lambda-Runtime-Deadline-Ms": str(deadline),
                        "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:report",
                        "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                        "Content-Type": "application/json",
                    },
                )

            def do_POST(self) -> None:
                now = time.perf_counter()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.strip("/").split("/")
                with api.cond:
                    if parts[-2:] == ["init", "error"]:
                        api.init_error = body
                    elif parts[-1] in ("response", "error"):
                        api.done[parts[-2]] = (now, 200 if parts[-1] == "response" else 500, body)
                    api.cond.notify_all()
                self._reply(202, b'{"status":"OK"}')

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass  # the process was stopped mid-request: expected between runs

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, pred, timeout: float, what: str) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: pred() or self.init_error is not None, timeout):
                raise TimeoutError(f"timed out waiting for {what}")
            if self.init_error is not None:
                raise RuntimeError(f"init error: {self.init_error[:300]!r}")

    def invoke(self, event: dict, timeout: float = 120) -> tuple[float, int, bytes]:
        """Queues one event; returns (handler seconds, status, response body)."""
        with self.cond:
            before = set(self.handed_out)
            self.events.append(json.dumps(event).encode())
            self.cond.notify_all()
        self.wait(lambda: set(self.handed_out) - before, timeout, "the invocation to be taken")
        rid = (set(self.handed_out) - before).pop()
        self.wait(lambda: rid in self.done, timeout, "the response")
        end, status, body = self.done[rid]
        return end - self.handed_out[rid], status, body

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def spawn(prefix: list[str], binary: Path, name: str, env: dict[str, str], api: RuntimeApi, log_file) -> tuple[subprocess.Popen, float]:
    proc_env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "report",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "_HANDLER": "bootstrap",
        **env,
    }
    start = time.perf_counter()
    proc = subprocess.Popen([*prefix, str(binary)], env=proc_env, stdout=log_file, stderr=log_file)
    return proc, start


def stop(proc: subprocess.Popen, api: RuntimeApi) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
    api.close()
