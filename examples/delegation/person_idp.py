"""A stand-in for a company's identity provider, on loopback, for docs/delegation.md.

It signs people's access tokens (what an IdP gives a signed-in user's client) and
publishes its keys, and no more:

    serve   publish the JWK set (``/jwks``) and OIDC discovery on http://127.0.0.1:PORT;
    token   print a signed token for a person: ``sub``, ``aud``, ``scope``, optionally
            ``may_act`` (RFC 8693 §4.4: who may act for them).

The signing key lives in ``--dir`` (default ``.person-idp``). Register a real IdP's
issuer and JWKS URL instead (see docs/federation.md).

    python examples/delegation/person_idp.py serve --port 8700 &
    python examples/delegation/person_idp.py token --sub alice@example.com \\
        --audience http://127.0.0.1:8400 --audience https://crm.example/api --scope "crm:read crm:write"
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

KEY_FILE = "idp-key.json"
CONFIG_FILE = "idp.json"


def load_or_create_key(directory: Path) -> dict[str, Any]:
    path = directory / KEY_FILE
    if path.exists():
        return dict(json.loads(path.read_text()))
    directory.mkdir(parents=True, exist_ok=True)
    key = ECKey.generate_key("P-256")
    private = dict(key.as_dict(private=True))
    private.update(kid=f"idp-{uuid.uuid4().hex[:8]}", alg="ES256", use="sig")
    path.write_text(json.dumps(private))
    path.chmod(0o600)
    return private


def public_jwks(directory: Path) -> dict[str, Any]:
    private = load_or_create_key(directory)
    public = dict(ECKey.import_key(private).as_dict(private=False))
    public.update(kid=private["kid"], alg="ES256", use="sig")
    return {"keys": [public]}


def serve(directory: Path, port: int) -> None:
    load_or_create_key(directory)
    issuer = f"http://127.0.0.1:{port}"
    (directory / CONFIG_FILE).write_text(json.dumps({"issuer": issuer}))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"person-idp: {self.command} {self.path}\n")

        def do_GET(self) -> None:
            if self.path == "/jwks":
                body: dict[str, Any] = public_jwks(directory)
            elif self.path == "/.well-known/openid-configuration":
                body = {
                    "issuer": issuer,
                    "jwks_uri": f"{issuer}/jwks",
                    "id_token_signing_alg_values_supported": ["ES256"],
                }
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"person-idp: serving {issuer} (jwks at {issuer}/jwks)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


def token(
    directory: Path, *, sub: str, audiences: list[str], scope: str, lifetime: int, may_act: str | None
) -> str:
    config = directory / CONFIG_FILE
    if not config.exists():
        sys.exit(f"error: no identity provider is being served from '{directory}' (run 'serve' first)")
    private = load_or_create_key(directory)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": json.loads(config.read_text())["issuer"],
        "sub": sub,
        "aud": audiences,
        "scope": scope,
        "iat": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
    }
    if may_act:
        claims["may_act"] = {"sub": may_act}
    return jwt.encode(
        {"alg": "ES256", "kid": private["kid"], "typ": "JWT"}, claims, ECKey.import_key(private)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(".person-idp"), help="where the key is kept")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="publish the JWK set on loopback")
    serve_cmd.add_argument("--port", type=int, default=8700)
    token_cmd = commands.add_parser("token", help="print a person's signed access token")
    token_cmd.add_argument("--sub", default="alice@example.com")
    token_cmd.add_argument("--audience", action="append", required=True, help="repeatable")
    token_cmd.add_argument("--scope", default="")
    token_cmd.add_argument("--lifetime", type=int, default=900, help="seconds")
    token_cmd.add_argument("--may-act", default=None, help="the agent id allowed to act for the person")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.dir, args.port)
    else:
        print(
            token(
                args.dir,
                sub=args.sub,
                audiences=args.audience,
                scope=args.scope,
                lifetime=args.lifetime,
                may_act=args.may_act,
            )
        )


if __name__ == "__main__":
    main()
