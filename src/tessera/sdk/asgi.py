"""ASGI middleware that verifies each request's Tessera token and DPoP proof.

    app = TesseraAuthMiddleware(app, TokenVerifier.for_server("http://127.0.0.1:8400",
                                                              audience="https://api.example"))

The verified identity is at ``scope["state"]["tessera"]`` (``request.state.tessera``
in Starlette/FastAPI). Failures answer 401 with ``WWW-Authenticate`` (RFC 6750 §3,
RFC 9449 §7.1). Set ``public_url`` when behind a proxy so ``htu`` is checked
against the URL clients actually used.
"""

from __future__ import annotations

import json
from collections.abc import Collection

import anyio.to_thread

from tessera.sdk.asgi_types import ASGIApp, Receive, Scope, Send, request_url
from tessera.sdk.verifier import TokenVerifier, UnknownKey, VerificationError, VerifiedRequest


class TesseraAuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        verifier: TokenVerifier,
        *,
        public_url: str | None = None,
        exempt_paths: Collection[str] = (),
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.public_url = public_url.rstrip("/") if public_url else None
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        proofs: list[str] = []
        for raw_name, raw_value in scope.get("headers", ()):
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            if name == "dpop":
                proofs.append(value)
            else:
                headers[name] = value
        url = request_url(scope, self.public_url)
        method = scope.get("method", "GET")
        authorization = headers.get("authorization")
        try:
            try:
                verified = self.verifier.verify(
                    authorization, method=method, url=url, dpop=proofs, allow_fetch=False
                )
            except UnknownKey:
                verified = await anyio.to_thread.run_sync(
                    self._verify_fetching, authorization, method, url, proofs
                )
        except VerificationError as exc:
            await self._deny(send, exc)
            return
        scope.setdefault("state", {})["tessera"] = verified
        await self.app(scope, receive, send)

    def _verify_fetching(
        self, authorization: str | None, method: str, url: str, proofs: list[str]
    ) -> VerifiedRequest:
        return self.verifier.verify(authorization, method=method, url=url, dpop=proofs, allow_fetch=True)

    @staticmethod
    async def _deny(send: Send, exc: VerificationError) -> None:
        body = json.dumps({"error": exc.error, "error_description": exc.description}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": exc.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", exc.www_authenticate.encode("latin-1", "replace")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
