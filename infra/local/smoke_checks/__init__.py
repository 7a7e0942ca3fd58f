"""Smoke checks of the deployed local stack's wiring (infra, not function logic), one module per
concern; infra/local/smoke.py runs them. What they share: the values of `.local/stack.env`, boto3
clients for the emulator, HTTP with a bearer token, tokens from the local issuer."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

from stackenv import client as emulator_client
from stackenv import read_env

ENV = read_env()


def client(service: str):
    return emulator_client(service, ENV["AWS_ENDPOINT_URL"], ENV["AWS_REGION"])


def http(method: str, url: str, token: str | None = None, body: bytes | None = None,
         content_type: str = "application/json") -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def token(query: str) -> str:
    with urllib.request.urlopen(f"{ENV['SAFELIGHT_TOKEN_URL']}?{query}", timeout=10) as resp:
        return resp.read().decode().strip()


def claims_of(tok: str) -> dict:
    payload = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# ------------------------------------------------------------------ checks
