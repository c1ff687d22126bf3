"""Identity federation: trusted issuers, safe JWKS fetching, claim mapping (RFC 7523, RFC 8693)."""
