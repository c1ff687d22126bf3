"""Automated response: per-agent controls, playbooks, and the kill switch."""
