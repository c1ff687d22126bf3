"""The request-size limit: one default, a larger one for policy bundle uploads."""

from __future__ import annotations

import asyncio
from typing import Any

from tessera.server.limits import BodySizeLimit


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


def call(limit: BodySizeLimit, path: str, size: int, *, declared: bool) -> int:
    sent: list[dict[str, Any]] = []
    chunks = [{"type": "http.request", "body": b"x" * size, "more_body": False}]
    headers = [(b"content-length", str(size).encode())] if declared else []
    scope = {"type": "http", "path": path, "headers": headers}

    async def receive() -> dict[str, Any]:
        return chunks.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(limit(scope, receive, send))
    return int(sent[0]["status"])


def test_bundle_uploads_get_their_own_larger_limit() -> None:
    limit = BodySizeLimit(_echo, max_bytes=1024, overrides={"/admin/v1/policies": 4096})
    assert limit.limit_for("/oauth2/token") == 1024
    assert limit.limit_for("/admin/v1/policies/validate") == 4096
    assert call(limit, "/admin/v1/policies", 3000, declared=True) == 200
    assert call(limit, "/admin/v1/agents", 3000, declared=True) == 413
    assert call(limit, "/admin/v1/policies", 5000, declared=True) == 413


def test_an_undeclared_body_is_counted_as_it_arrives() -> None:
    limit = BodySizeLimit(_echo, max_bytes=1024, overrides={"/admin/v1/policies": 4096})
    assert call(limit, "/admin/v1/policies", 3000, declared=False) == 200
    assert call(limit, "/oauth2/token", 3000, declared=False) == 413
