"""The token service: signing keys, JWT access tokens, client authentication, DPoP, grants."""
