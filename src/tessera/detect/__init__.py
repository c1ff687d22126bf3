"""Continuous verification: per-agent baselines, risk scores and automated responses."""
