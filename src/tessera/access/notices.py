"""What approvers and agents are told about access requests (through :class:`Notifier`)."""

from __future__ import annotations

import json
from collections.abc import Callable

from tessera.access.notify import Notifier
from tessera.access.requests import AccessRequest, Kind
from tessera.identity.agents import Agent

CALLBACK_ATTRIBUTE = "ciba_notification_endpoint"


def summary(request: AccessRequest) -> str:
    asked = request.asked
    if request.kind is Kind.ACTION:
        resource = asked.get("resource", {})
        context = json.dumps(asked.get("context", {}), sort_keys=True)[:300]
        return f"{asked.get('action')} on {resource.get('type')}::{resource.get('id')} with {context}"
    return (
        f"a token with scope '{' '.join(asked.get('scope', []))}' for {', '.join(asked.get('audience', []))}"
    )


class RequestNotices:
    def __init__(
        self,
        notifier: Notifier,
        lookup_agent: Callable[[str], Agent | None],
        auth_req_id: Callable[[str], str],
    ) -> None:
        self._notifier = notifier
        self._lookup_agent = lookup_agent
        self._auth_req_id = auth_req_id

    def approvers(self, title: str, request: AccessRequest) -> None:
        self._notifier.approvers(
            f"{title}: agent {request.agent_id} asks for {summary(request)}"[:150],
            [
                f"*request* `{request.id}` (hash `{request.asked_hash[:16]}…`)",
                f"*agent* {request.agent_id}, owned by {request.owner}",
                f"*task* {request.task_id or '-'}: {request.purpose}",
                f"*asks* {summary(request)}",
                f"*for* {request.ttl} s; *risk* {request.risk}",
                f"*approvers* {', '.join(request.eligible_groups)} ({request.approvals_required} needed)",
                f"`tessera approvals show {request.id}`",
            ],
        )

    def ping(self, request: AccessRequest) -> None:
        """CIBA §10.2 ping mode: tell the agent its result is ready, if it asked to be told."""
        if not request.callback_token:
            return
        agent = self._lookup_agent(request.agent_id)
        url = agent.attributes.get(CALLBACK_ATTRIBUTE) if agent is not None else None
        if url:
            self._notifier.ping(url, self._auth_req_id(request.id), request.callback_token)
