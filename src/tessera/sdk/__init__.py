"""Client-side pieces: the agent client, the resource-server verifier and its ASGI middleware."""

from tessera.sdk.agent import AgentClient, TokenResponse
from tessera.sdk.verifier import JwksCache, TokenVerifier, VerificationError, VerifiedRequest

__all__ = [
    "AgentClient",
    "JwksCache",
    "TokenResponse",
    "TokenVerifier",
    "VerificationError",
    "VerifiedRequest",
]
