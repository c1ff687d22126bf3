"""An ASGI guard that asks a :class:`~tessera.sdk.pdp.LocalPDP` about every request.

    app = protect(app, verifier=TokenVerifier.for_server(url, audience=api), pdp=pdp)

``protect`` verifies the caller's Tessera token (and DPoP proof) with
:class:`~tessera.sdk.asgi.TesseraAuthMiddleware`, then decides
``Agent::"<client_id>"``, the action and the resource. By default the action comes from
the method (GET/HEAD → ``read``, DELETE → ``delete``, other → ``write``) and the
resource is ``Resource::"<path>"`` with attribute ``uri`` = the request URL; pass
``resolve`` to map requests your own way. A deny answers 403 with the decision id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any

from tessera.policy.entities import AGENT_TYPE, Uid
from tessera.sdk.asgi import TesseraAuthMiddleware
from tessera.sdk.asgi_types import ASGIApp, Receive, Scope, Send, request_url
from tessera.sdk.pdp import LocalPDP
from tessera.sdk.verifier import TokenVerifier, VerifiedRequest

Resolver = Callable[[Scope, str], tuple[str, Uid, dict[str, Any], dict[str, dict[str, Any]]]]
_ACTIONS = {"GET": "read", "HEAD": "read", "DELETE": "delete"}


def resolve_by_method(scope: Scope, url: str) -> tuple[str, Uid, dict[str, Any], dict[str, dict[str, Any]]]:
    """Default mapping: method → action, path → ``Resource`` with a ``uri`` attribute."""
    action = _ACTIONS.get(str(scope.get("method", "GET")), "write")
    resource = Uid("Resource", str(scope.get("path", "/")))
    entity = {"uid": resource.as_json(), "attrs": {"uri": url}, "parents": []}
    return action, resource, {}, {resource.key: entity}


class PolicyGuard:
    def __init__(
        self,
        app: ASGIApp,
        pdp: LocalPDP,
        *,
        resolve: Resolver = resolve_by_method,
        public_url: str | None = None,
    ) -> None:
        self.app = app
        self.pdp = pdp
        self.resolve = resolve
        self.public_url = public_url.rstrip("/") if public_url else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        verified = scope.get("state", {}).get("tessera") if scope["type"] == "http" else None
        if not isinstance(verified, VerifiedRequest):
            await self.app(scope, receive, send)
            return
        action, resource, context, entities = self.resolve(scope, request_url(scope, self.public_url))
        client = scope.get("client")
        decision = self.pdp.decide(
            Uid(AGENT_TYPE, verified.agent_id),
            action,
            resource,
            context,
            token=verified.token,
            client_ip=client[0] if client else None,
            entities=entities,
        )
        if decision.allowed:
            scope["state"]["tessera_decision"] = decision
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "error": "access_denied",
                "error_description": f"policy {decision.policy_version} denies {action} on {resource.key}",
                "decision_id": decision.decision_id,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-tessera-decision", decision.decision_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def protect(
    app: ASGIApp,
    *,
    verifier: TokenVerifier,
    pdp: LocalPDP,
    resolve: Resolver = resolve_by_method,
    public_url: str | None = None,
    exempt_paths: Collection[str] = (),
) -> ASGIApp:
    """Verify the token, then ask the PDP; exempt paths skip both."""
    guarded = PolicyGuard(app, pdp, resolve=resolve, public_url=public_url)
    return TesseraAuthMiddleware(guarded, verifier, public_url=public_url, exempt_paths=exempt_paths)
