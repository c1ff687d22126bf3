"""Grant handlers: one module per grant type, registered in ``tessera.tokens.endpoint``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from tessera.policy.context import TaskFacts
from tessera.tokens.client_auth import AuthenticatedClient, SingleUse
from tessera.tokens.issuer import IssuedToken, TokenGrant
from tessera.tokens.requests import TokenRequest


@dataclass(frozen=True, slots=True)
class ProofOfPossession:
    """The verified DPoP proof of a token request (RFC 9449 §5)."""

    jkt: str
    single_use: SingleUse


class GrantHandler(Protocol):
    grant_type: str

    def can_handle(self, request: TokenRequest) -> bool: ...

    def handle(
        self, request: TokenRequest, client: AuthenticatedClient, pop: ProofOfPossession | None
    ) -> IssuedToken: ...


@runtime_checkable
class ClientAuthenticationOptional(Protocol):
    """A grant whose client authentication is optional (RFC 7523 §3.1 for ``jwt-bearer``).

    The endpoint authenticates a client that presents credentials, as for every
    grant; a request without any reaches ``handle`` with ``client=None``. Grants
    without this marker always require client authentication.
    """

    grant_type: str
    client_authentication_optional: bool

    def can_handle(self, request: TokenRequest) -> bool: ...

    def handle(
        self, request: TokenRequest, client: AuthenticatedClient | None, pop: ProofOfPossession | None
    ) -> IssuedToken: ...


class TaskBinder(Protocol):
    """Applies a registered task's limits to a grant (``tessera.access.task_service``)."""

    def bind(self, grant: TokenGrant, *, delegated: bool = False) -> tuple[TokenGrant, TaskFacts | None]: ...


class PendingApproval(Exception):
    """Policy wants a person's approval: the token endpoint answers with the CIBA
    acknowledgement (OpenID CIBA Core 1.0 §7.3: ``auth_req_id``, ``expires_in``,
    ``interval``) instead of a token."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__("approval pending")
        self.body = body


class ApprovalGate(Protocol):
    """What a grant calls when policy wants approval (:class:`tessera.access.flows.TokenApprovals`)."""

    def token_needs_approval(
        self,
        grant: TokenGrant,
        obligations: dict[str, str],
        *,
        policy_version: str | None,
        policies: tuple[str, ...],
        callback_token: str | None,
    ) -> None:
        """Return to issue anyway (break-glass), or raise :class:`PendingApproval`."""
        ...
