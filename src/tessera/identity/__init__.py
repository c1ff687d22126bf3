"""Agent identities: registration, attributes, lifecycle and public-key credentials."""
