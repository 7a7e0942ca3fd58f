"""Smoke checks of the front door: the JWT authorizer and the admin scope, the tokens the local
issuer hands out, CORS for browsers, the WebSocket API."""

from __future__ import annotations

import base64
import json
import os
import socket
import urllib.parse
import urllib.request
import uuid

from smoke_checks import ENV, claims_of, client, http, token


def check_request_without_token_is_refused_by_the_authorizer():
    status, _ = http("GET", f"{ENV['SAFELIGHT_API_URL']}/api/images")
    assert status == 401, f"expected 401, got {status}"


def check_forged_expired_and_wrong_audience_tokens_are_refused():
    for query in ("user=demo&forge=1", "user=demo&ttl=-120", "user=demo&aud=someone-else"):
        status, _ = http("GET", f"{ENV['SAFELIGHT_API_URL']}/api/images", token(query))
        assert status == 401, f"{query}: expected 401, got {status}"


def check_a_valid_token_reaches_the_upload_function():
    body = json.dumps({"filename": "smoke.jpg", "content_type": "image/jpeg", "size": 1234}).encode()
    status, resp = http("POST", f"{ENV['SAFELIGHT_API_URL']}/api/images/upload", token("user=demo"), body)
    # Past the authorizer: the function answered (any status but the gateway's 401/403/404).
    assert status not in (401, 403, 404), f"gateway refused a valid token: {status} {resp[:200]!r}"
    # The function's invocation shows up in the emulator's Lambda logs is not portable; the answer is.
    if status >= 500:
        raise AssertionError(f"upload function failed: {status} {resp[:300]!r}")


def check_browser_preflight_to_the_api_is_allowed():
    req = urllib.request.Request(f"{ENV['SAFELIGHT_API_URL']}/api/images/upload", method="OPTIONS")
    req.add_header("Origin", ENV["SAFELIGHT_ISSUER_URL"])
    req.add_header("Access-Control-Request-Method", "POST")
    req.add_header("Access-Control-Request-Headers", "authorization,content-type")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status in (200, 204), resp.status
        allowed = resp.headers.get("Access-Control-Allow-Headers", "").lower()
        assert "authorization" in allowed and resp.headers.get("Access-Control-Allow-Origin"), dict(resp.headers)


def check_bucket_cors_rules_allow_browser_uploads():
    rules = client("s3").get_bucket_cors(Bucket=ENV["SAFELIGHT_BUCKET"])["CORSRules"]
    methods = {m for r in rules for m in r["AllowedMethods"]}
    headers = {h.lower() for r in rules for h in r.get("AllowedHeaders", [])}
    assert {"PUT", "POST"} <= methods, rules
    assert {"content-type", "x-amz-checksum-sha256"} <= headers, rules


def check_tokens_carry_sub_audience_and_the_admin_scope_only_for_admins():
    scope = ENV["SAFELIGHT_ADMIN_SCOPE"]
    admin = claims_of(token("user=admin"))
    demo = claims_of(token("user=demo"))
    assert scope in admin["scope"].split(" ") and admin["sub"] == "admin", admin
    assert "groups" not in admin, admin
    assert scope not in demo["scope"].split(" ") and demo["aud"] == ENV["SAFELIGHT_JWT_AUDIENCE"], demo
    fresh = claims_of(token(f"sub=smoke-{uuid.uuid4().hex[:8]}&admin=1"))
    assert scope in fresh["scope"].split(" "), fresh


def check_the_gateway_refuses_admin_routes_to_tokens_without_the_admin_scope():
    """AuthorizationScopes on the admin routes: API Gateway (here the emulator, which enforces them
    like AWS) answers 403 before the function runs, whatever groups or look-alike scopes the token
    carries; the admin scope passes."""
    url = f"{ENV['SAFELIGHT_API_URL']}/api/admin/processing-queue"
    scope = ENV["SAFELIGHT_ADMIN_SCOPE"]
    for query in ("user=demo", "user=demo&groups=admin", "user=demo&groups=Site%20admin",
                  f"user=demo&scope=x,{scope}", f"user=demo&scope={scope}s"):
        status, body = http("GET", url, token(query))
        assert status == 403, f"{query}: expected 403, got {status} {body[:200]!r}"
    status, body = http("GET", url, token("user=admin"))
    assert status == 200, f"admin: expected 200, got {status} {body[:200]!r}"


def check_websocket_api_is_deployed_with_its_routes():
    api_id = ENV["SAFELIGHT_WS_URL"].rstrip("/").split("/")[-2]
    apigw = client("apigatewayv2")
    routes = {r["RouteKey"] for r in apigw.get_routes(ApiId=api_id)["Items"]}
    assert {"$connect", "$disconnect", "$default"} <= routes, routes
    api = apigw.get_api(ApiId=api_id)
    assert api["ProtocolType"] == "WEBSOCKET" and api["RouteSelectionExpression"] == "$request.body.action", api


def check_websocket_connect_without_token_is_refused():
    url = urllib.parse.urlsplit(ENV["SAFELIGHT_WS_URL"])
    with socket.create_connection((url.hostname, url.port or 80), timeout=15) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((
            f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode())
        status_line = sock.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
    assert " 101 " not in status_line + " ", f"connected without a token: {status_line}"
