"""A tiny external token issuer for federation tests, served by the tests themselves over loopback.

It holds signing keys (joserfc), serves its JWK set over HTTP on 127.0.0.1 from a
thread, signs its own tokens and rotates its keys (the old kid disappears, a new
one appears). ``mode`` makes the JWKS endpoint misbehave: redirect to another
host, answer too large a body, stall, fail, or answer something that is not JSON.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import json
import secrets
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

SigningKey = ECKey | RSAKey | OKPKey
_SIGNERS = JWSRegistry(algorithms=["ES256", "RS256", "Ed25519"], strict_check_header=False)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64_json(value: Any) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def new_key(alg: str) -> SigningKey:
    if alg == "RS256":
        return RSAKey.generate_key(2048)
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519")
    return ECKey.generate_key("P-256")


@dataclass
class LocalIssuer:
    alg: str = "ES256"
    mode: str = "ok"
    #: Requests the JWKS endpoint answered, and the Host headers they carried.
    requests: int = 0
    hosts: list[str] = field(default_factory=list)
    keys: dict[str, SigningKey] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self.rotate()

    # --- keys and tokens -------------------------------------------------------------------

    @property
    def kid(self) -> str:
        return next(reversed(self.keys))

    def rotate(self) -> str:
        """Replace every key by a new one with a new kid; returns the new kid."""
        kid = f"k-{secrets.token_hex(4)}"
        self.keys = {kid: new_key(self.alg)}
        return kid

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys.items():
            public = dict(key.as_dict(private=False))
            public.update(kid=kid, alg=self.alg, use="sig")
            keys.append(public)
        return {"keys": keys}

    def token(
        self,
        *,
        now: float,
        audience: str | list[str] = "http://tessera.test",
        subject: str = "system:serviceaccount:payments:reporter",
        lifetime: int = 600,
        header: dict[str, Any] | None = None,
        key: SigningKey | None = None,
        **claims: Any,
    ) -> str:
        """A signed token; ``claims`` override or (with ``None``) remove the defaults."""
        body: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": int(now),
            "exp": int(now) + lifetime,
            "jti": secrets.token_urlsafe(12),
            "kubernetes.io": {
                "namespace": "payments",
                "serviceaccount": {"name": "reporter", "uid": "5e0c"},
            },
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        head = {"alg": self.alg, "kid": self.kid, "typ": "JWT", **(header or {})}
        head = {k: v for k, v in head.items() if v is not None}
        signer = key or self.keys[self.kid]
        # Signed by hand (joserfc's algorithms do the cryptography), so a header may say anything.
        signing_input = f"{_b64_json(head)}.{_b64_json(body)}"
        algorithm = _SIGNERS.get_alg("Ed25519" if head["alg"] == "EdDSA" else head["alg"])
        return f"{signing_input}.{_b64(algorithm.sign(signing_input.encode('ascii'), signer))}"

    # --- the HTTP side ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}" if self._server else "http://issuer.invalid"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks"

    def start(self, tls: ssl.SSLContext | None = None) -> LocalIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                issuer.requests += 1
                issuer.hosts.append(self.headers.get("Host", ""))
                issuer.respond(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="local-issuer", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        if self.mode == "redirect":
            handler.send_response(302)
            handler.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if self.mode == "error":
            handler.send_error(500)
            return
        if self.mode == "slow":
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.end_headers()
            handler.wfile.flush()
            self.release.wait(30)
            return
        if self.mode == "huge":
            # No Content-Length: the client only learns the size by reading.
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.end_headers()
            filler = b" " * 65536
            try:
                handler.wfile.write(b'{"keys": [], "pad": "')
                for _ in range(64):
                    handler.wfile.write(filler)
            except (BrokenPipeError, ConnectionResetError):
                pass
            handler.close_connection = True
            return
        body = b"not json" if self.mode == "not-json" else json.dumps(self.jwks()).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if self.mode == "gzip":
            body = gzip.compress(body)
            handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def self_signed(tmp_dir: Path, hostname: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A certificate for ``hostname``: the server's TLS context, and a client context trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_dir / f"{hostname}.pem", tmp_dir / f"{hostname}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client
