"""A stand-in for a Kubernetes cluster's service-account token issuer, on loopback.

It does what the API server does for projected service-account tokens, and no more:

    serve   publish the issuer's JWK set (``/openid/v1/jwks``) and OIDC discovery
            document on http://127.0.0.1:PORT, as ``kubectl get --raw /openid/v1/jwks`` shows;
    token   print a signed token shaped like a projected service-account token
            (``iss``, ``sub`` = system:serviceaccount:NS:NAME, ``aud``, ``kubernetes.io``);
    rotate  replace the signing key (new kid); a running ``serve`` publishes it at once.

The signing key lives in ``--dir`` (default ``.workload-issuer``). Nothing here is
needed in a real cluster: register the cluster's own issuer and JWKS URL instead
(see docs/federation.md).

    python examples/federation/workload_issuer.py serve --port 8600 &
    python examples/federation/workload_issuer.py token --audience http://127.0.0.1:8400
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

KEY_FILE = "issuer-key.json"
CONFIG_FILE = "issuer.json"


def key_path(directory: Path) -> Path:
    return directory / KEY_FILE


def load_or_create_key(directory: Path) -> dict[str, Any]:
    path = key_path(directory)
    if path.exists():
        return dict(json.loads(path.read_text()))
    return rotate(directory)


def rotate(directory: Path) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    key = ECKey.generate_key("P-256")
    private = dict(key.as_dict(private=True))
    private.update(kid=f"sa-{secrets.token_hex(4)}", alg="ES256", use="sig")
    path = key_path(directory)
    path.write_text(json.dumps(private))
    path.chmod(0o600)
    return private


def public_jwks(directory: Path) -> dict[str, Any]:
    private = load_or_create_key(directory)
    public = dict(ECKey.import_key(private).as_dict(private=False))
    public.update(kid=private["kid"], alg="ES256", use="sig")
    return {"keys": [public]}


def issuer_url(directory: Path) -> str:
    config = directory / CONFIG_FILE
    if not config.exists():
        sys.exit(f"error: no issuer is being served from '{directory}' (run 'serve' first)")
    return str(json.loads(config.read_text())["issuer"])


def serve(directory: Path, port: int) -> None:
    load_or_create_key(directory)
    issuer = f"http://127.0.0.1:{port}"
    (directory / CONFIG_FILE).write_text(json.dumps({"issuer": issuer}))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(
                f"workload-issuer: {self.command} {self.path} -> {args[1] if len(args) > 1 else ''}\n"
            )

        def do_GET(self) -> None:
            if self.path == "/openid/v1/jwks":
                body: dict[str, Any] = public_jwks(directory)
            elif self.path == "/.well-known/openid-configuration":
                body = {
                    "issuer": issuer,
                    "jwks_uri": f"{issuer}/openid/v1/jwks",
                    "response_types_supported": ["id_token"],
                    "subject_types_supported": ["public"],
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
    print(f"workload-issuer: serving {issuer} (jwks at {issuer}/openid/v1/jwks)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


def token(directory: Path, audience: str, namespace: str, service_account: str, lifetime: int) -> str:
    private = load_or_create_key(directory)
    now = int(time.time())
    claims = {
        "iss": issuer_url(directory),
        "sub": f"system:serviceaccount:{namespace}:{service_account}",
        "aud": [audience],
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": {
            "namespace": namespace,
            "pod": {"name": f"{service_account}-7c9f8d-x2x5q", "uid": str(uuid.uuid4())},
            "serviceaccount": {"name": service_account, "uid": str(uuid.uuid4())},
        },
    }
    header = {"alg": "ES256", "kid": private["kid"]}
    return jwt.encode(header, claims, ECKey.import_key(private))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(".workload-issuer"), help="where the key is kept")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="publish the JWK set on loopback")
    serve_cmd.add_argument("--port", type=int, default=8600)
    token_cmd = commands.add_parser("token", help="print a projected service-account token")
    token_cmd.add_argument("--audience", required=True, help="the aud (your Tessera's issuer url)")
    token_cmd.add_argument("--namespace", default="payments")
    token_cmd.add_argument("--service-account", default="reporter")
    token_cmd.add_argument("--lifetime", type=int, default=600, help="seconds")
    commands.add_parser("rotate", help="replace the signing key (new kid)")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.dir, args.port)
    elif args.command == "token":
        print(token(args.dir, args.audience, args.namespace, args.service_account, args.lifetime))
    else:
        print(f"new kid {rotate(args.dir)['kid']}")


if __name__ == "__main__":
    main()
