#!/usr/bin/env python3
"""Safelight's local OpenID issuer: just enough OIDC for the API Gateway JWT authorizer.

What runs on AWS is Cognito (or any OIDC provider); locally the emulator's JWT authorizer and the
`ws` function need an issuer that publishes RS256 keys, so this small server:

* serves `/.well-known/openid-configuration` and `/jwks.json` (RS256, key kept in `.local/issuer/`,
  generated on first start, so tokens survive restarts);
* mints tokens for dev users at `GET /dev/token`:
    - `?user=demo|other|admin`            the three fixed dev users (sub `demo`, `other`, `admin`)
    - `?sub=<any>`                        any subject, e.g. a fresh user per test
    - `&admin=1`                          adds the admin scope to the `scope` claim (the admin user has it):
                                          `scope` is `openid` for everyone, `openid safelight/admin` for admins
    - `&scope=<s>`                        the `scope` claim exactly as given (e.g. `x,safelight/admin`, refused)
    - `&groups=<name>`                    a `groups` claim `[name]` (e.g. `admin`): groups grant nothing
    - `&ttl=<seconds>`                    lifetime (default 43200); negative = already expired
    - `&aud=<audience>`                   another audience than the configured one (to test refusal)
    - `&iss=<url>`                        another issuer than this one, signed with the real key (refusal)
    - `&forge=1`                          signed with a key that is NOT published (a forged token)
    - `&format=json`                      `{"token", "sub", "expires_at", "claims"}` instead of the bare token
* serves `/config.json` (API / WebSocket / issuer URLs from `.local/stack.env`) and the static
  `web/` folder at `/`, so the browser client runs from the same origin as the token endpoint.

Admin is an OAuth scope, `ADMIN_SCOPE` (default `safelight/admin`, the template's `AdminScope`), in the
space-separated `scope` claim, as Cognito puts custom scopes in access tokens. The HTTP API's admin
routes name it in `AuthorizationScopes`; the emulator enforces that as AWS does (403 `{"message":
"Forbidden"}` before the function runs), and the admin function checks it again. Groups grant
nothing (API Gateway would hand a `groups` array to the Lambda as one string, `"[admin]"`).

Binds 127.0.0.1 only. Standard library + `cryptography` (installed by `ministack[full]`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import os
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from stackenv import LOCAL, ROOT, read_env

HOST = "127.0.0.1"
PORT = int(os.environ.get("ISSUER_PORT", "4590"))
ISSUER = os.environ.get("ISSUER_URL", f"http://{HOST}:{PORT}")
AUDIENCE = os.environ.get("JWT_AUDIENCE", "safelight")
ADMIN_SCOPE = os.environ.get("ADMIN_SCOPE", "safelight/admin")
WEB_DIR = Path(os.environ.get("WEB_DIR", ROOT / "web"))
DEFAULT_TTL = 12 * 3600
USERS = {
    "demo": {"sub": "demo", "name": "Demo User", "admin": False},
    "other": {"sub": "other", "name": "Other User", "admin": False},
    "admin": {"sub": "admin", "name": "Admin User", "admin": True},
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pem)
    os.chmod(tmp, 0o600)
    tmp.rename(path)
    return key


def kid_of(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b64url(hashlib.sha256(der).digest())[:16]


def jwk_of(key: rsa.RSAPrivateKey) -> dict:
    numbers = key.public_key().public_numbers()
    n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid_of(key), "n": b64url(n), "e": b64url(e)}


SIGNING_KEY = load_or_create_key(LOCAL / "issuer" / "signing-key.pem")
# Never published: tokens signed with it must be refused (`forge=1`). Same kid on purpose, so the
# refusal comes from the signature check and not from an unknown key id.
FORGERY_KEY = load_or_create_key(LOCAL / "issuer" / "forgery-key.pem")
KID = kid_of(SIGNING_KEY)


def sign(claims: dict, key: rsa.RSAPrivateKey) -> str:
    header = {"alg": "RS256", "typ": "JWT", "kid": KID}
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(signature)


def mint(params: dict[str, str]) -> tuple[int, dict]:
    user = params.get("user")
    if user is not None and user not in USERS:
        return 400, {"error": {"code": "unknown_user", "message": f"user must be one of {sorted(USERS)}"}}
    preset = USERS.get(user or ("demo" if "sub" not in params else ""), {})
    sub = params.get("sub") or preset.get("sub")
    if not sub:
        return 400, {"error": {"code": "missing_sub", "message": "give ?user= or ?sub="}}
    try:
        ttl = int(params.get("ttl", DEFAULT_TTL))
    except ValueError:
        return 400, {"error": {"code": "bad_ttl", "message": "ttl must be an integer number of seconds"}}
    admin = preset.get("admin", False) or params.get("admin") in ("1", "true", "yes")
    now = int(time.time())
    exp = now + ttl
    claims = {
        "iss": params.get("iss", ISSUER),
        "sub": sub,
        "aud": params.get("aud", AUDIENCE),
        "iat": now if ttl > 0 else exp - 60,
        "exp": exp,
        "token_use": "access",
        "name": preset.get("name", sub),
    }
    claims["scope"] = params["scope"] if "scope" in params else "openid" + (f" {ADMIN_SCOPE}" if admin else "")
    if params.get("groups"):
        claims["groups"] = [params["groups"]]
    key = FORGERY_KEY if params.get("forge") in ("1", "true", "yes") else SIGNING_KEY
    return 200, {"token": sign(claims, key), "sub": sub, "expires_at": exp, "claims": claims}


def read_stack_env() -> dict[str, str]:
    """`.local/stack.env`; empty until the first deploy wrote it."""
    try:
        return read_env()
    except FileNotFoundError:
        return {}


class Handler(BaseHTTPRequestHandler):
    server_version = "safelight-local-issuer"

    def log_message(self, fmt: str, *args) -> None:  # no tokens in logs: log the path only
        sys.stderr.write(f"issuer: {self.command} {urllib.parse.urlsplit(self.path).path} {args[1] if len(args) > 1 else ''}\n")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: dict) -> None:
        self._send(status, json.dumps(obj, indent=None).encode(), "application/json")

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "*")
        self.end_headers()

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        path = url.path
        if path == "/.well-known/openid-configuration":
            return self._json(200, {
                "issuer": ISSUER,
                "jwks_uri": f"{ISSUER}/jwks.json",
                "token_endpoint": f"{ISSUER}/dev/token",
                "response_types_supported": ["token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "claims_supported": ["iss", "sub", "aud", "exp", "iat", "scope", "groups", "name"],
                "scopes_supported": ["openid", ADMIN_SCOPE],
            })
        if path in ("/jwks.json", "/.well-known/jwks.json"):
            return self._json(200, {"keys": [jwk_of(SIGNING_KEY)]})
        if path == "/dev/token":
            status, body = mint(params)
            if status != 200 or params.get("format") == "json":
                return self._json(status, body)
            return self._send(200, (body["token"] + "\n").encode(), "text/plain; charset=utf-8")
        if path == "/health":
            return self._json(200, {"status": "ok", "issuer": ISSUER})
        if path == "/config.json":
            env = read_stack_env()
            return self._json(200, {
                "apiUrl": env.get("SAFELIGHT_API_URL"),
                "wsUrl": env.get("SAFELIGHT_WS_URL"),
                "issuerUrl": ISSUER,
                "tokenUrl": f"{ISSUER}/dev/token",
                "adminScope": ADMIN_SCOPE,
            })
        return self._static(path)

    def _static(self, path: str) -> None:
        if not WEB_DIR.is_dir():
            return self._json(404, {"error": {"code": "not_found", "message": "no web/ folder"}})
        rel = urllib.parse.unquote(path).lstrip("/") or "index.html"
        target = (WEB_DIR / rel).resolve()
        root = WEB_DIR.resolve()
        if root not in target.parents and target != root:
            return self._json(404, {"error": {"code": "not_found", "message": "not found"}})
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            return self._json(404, {"error": {"code": "not_found", "message": "not found"}})
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return self._send(200, target.read_bytes(), ctype)


def main() -> None:
    server = ThreadingHTTPServer((HOST, PORT), Handler)
    server.daemon_threads = True
    sys.stderr.write(f"issuer: {ISSUER} (kid {KID}, audience {AUDIENCE})\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
