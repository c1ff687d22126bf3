"""Client-side pieces: the agent client, the resource-server verifier and its ASGI middleware."""

from tessera.sdk.agent import AccessPending, AgentClient, ApprovalRequired, TokenError, TokenResponse
from tessera.sdk.verifier import JwksCache, TokenVerifier, VerificationError, VerifiedRequest

__all__ = [
    "AccessPending",
    "AgentClient",
    "ApprovalRequired",
    "JwksCache",
    "TokenError",
    "TokenResponse",
    "TokenVerifier",
    "VerificationError",
    "VerifiedRequest",
]
