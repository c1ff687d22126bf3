"""The change feed that keeps every worker's caches current, and outgoing notifications."""
