"""The ASGI interface (asgi.readthedocs.io, version 3) as plain types, and the URL a request used.

The SDK's middleware works under any ASGI server and framework, so it depends on
no framework for these.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def request_url(scope: Scope, public_url: str | None) -> str:
    """The URL a request was sent to, without query: ``public_url`` + path, or from Host.

    Behind a proxy pass ``public_url``; otherwise the client's ``Host`` header decides,
    which is what RFC 9449 §4.3 ``htu`` is compared with.
    """
    path = str(scope.get("path", "/"))
    if public_url:
        return public_url + path
    host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"host"), None)
    if not host:
        server = scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}{path}"
