"""Wire errors: one class per error code, each carrying its HTTP status and headers.

OAuth error codes follow RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 8707 §2, RFC 9396 §5
and RFC 9449 §7.1 / §8. Descriptions are lowercase, one line, and quote the
offending input. Anything that is not a ``TesseraError`` becomes ``server_error``
and is logged, never echoed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class TesseraError(Exception):
    """Base class: an error that has a well-defined representation on the wire."""

    error: str = "server_error"
    status: int = 500

    def __init__(self, description: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(description)
        self.description = " ".join(description.split())
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": self.description}


# --- OAuth 2.0 token endpoint (RFC 6749 §5.2) -------------------------------------------


class InvalidRequest(TesseraError):
    error = "invalid_request"
    status = 400


class InvalidClient(TesseraError):
    """RFC 6749 §5.2: client authentication failed. Answered with 401."""

    error = "invalid_client"
    status = 401


class InvalidGrant(TesseraError):
    error = "invalid_grant"
    status = 400


class UnauthorizedClient(TesseraError):
    error = "unauthorized_client"
    status = 400


class UnsupportedGrantType(TesseraError):
    error = "unsupported_grant_type"
    status = 400


class InvalidScope(TesseraError):
    error = "invalid_scope"
    status = 400


class InvalidTarget(TesseraError):
    """RFC 8707 §2: the requested resource is invalid or not allowed."""

    error = "invalid_target"
    status = 400


class InvalidAuthorizationDetails(TesseraError):
    """RFC 9396 §5: malformed or disallowed authorization_details."""

    error = "invalid_authorization_details"
    status = 400


class AccessDenied(TesseraError):
    """The request is understood but policy refuses it (RFC 6749 §4.1.2.1's code, as CIBA uses it)."""

    error = "access_denied"
    status = 400


class UnsupportedTokenType(TesseraError):
    """RFC 7009 §2.2.1."""

    error = "unsupported_token_type"
    status = 400


# --- CIBA token endpoint polling (OpenID CIBA Core 1.0 §11) ------------------------------


class AuthorizationPending(TesseraError):
    """CIBA §11: the request is still waiting for a person's answer; poll again after ``interval``."""

    error = "authorization_pending"
    status = 400


class SlowDown(TesseraError):
    """CIBA §11: polling too fast; the interval grows by 5 seconds for this and later polls."""

    error = "slow_down"
    status = 400


class ExpiredToken(TesseraError):
    """CIBA §11: the ``auth_req_id`` has expired; the agent must ask again."""

    error = "expired_token"
    status = 400


# --- DPoP (RFC 9449) ----------------------------------------------------------------------


class InvalidDPoPProof(TesseraError):
    """RFC 9449 §7.1 / §5: the DPoP proof is missing, malformed or does not verify."""

    error = "invalid_dpop_proof"
    status = 400


class UseDPoPNonce(TesseraError):
    """RFC 9449 §8: the server requires a nonce; the fresh one is in ``DPoP-Nonce``."""

    error = "use_dpop_nonce"
    status = 400


# --- Protected resources (RFC 6750 §3.1, RFC 9449 §7.1) -----------------------------------


class InvalidToken(TesseraError):
    """The access token is missing, malformed, expired, revoked or forged."""

    error = "invalid_token"
    status = 401


class InsufficientScope(TesseraError):
    """RFC 6750 §3.1: the token is valid but lacks the scope the API requires."""

    error = "insufficient_scope"
    status = 403


class InvalidResourceDPoPProof(TesseraError):
    """RFC 9449 §7.1: a protected API refuses the DPoP proof that came with a bound token."""

    error = "invalid_dpop_proof"
    status = 401


# --- Admin and generic API errors ---------------------------------------------------------


class Unauthorized(TesseraError):
    error = "unauthorized"
    status = 401


class Forbidden(TesseraError):
    error = "forbidden"
    status = 403


class NotFound(TesseraError):
    error = "not_found"
    status = 404


class Conflict(TesseraError):
    error = "conflict"
    status = 409


class PayloadTooLarge(TesseraError):
    error = "payload_too_large"
    status = 413


class ValidationFailed(TesseraError):
    """An admin API body or query failed validation."""

    error = "invalid_request"
    status = 400


class ServiceUnavailable(TesseraError):
    """A dependency (storage, audit) cannot be written; the operation did not happen."""

    error = "temporarily_unavailable"
    status = 503


class ServerError(TesseraError):
    error = "server_error"
    status = 500
