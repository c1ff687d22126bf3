"""A simulation's result as plain JSON (``tessera simulate --json``)."""

from __future__ import annotations

from typing import Any

from tessera.simulate.run import SimulationResult


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def result_json(result: SimulationResult) -> dict[str, Any]:
    report = result.report
    config = result.config
    return {
        "server": result.server,
        "seed": config.seed,
        "agents": config.agents,
        "days": config.days,
        "attacks_per_kind": config.attacks_per_kind,
        "threshold": result.threshold,
        "seconds": round(result.seconds, 1),
        "requests": result.scenario.stats,
        "kinds": [
            {
                "kind": k.kind.value,
                "attacks": k.attacks,
                "detected": k.detected,
                "recall": _round(k.recall),
                "precision": _round(k.precision),
                "median_requests_to_denial": k.median_requests_to_denial,
                "median_requests_to_response": k.median_requests_to_response,
                "median_seconds_to_response": _round(k.median_seconds_to_response, 1),
            }
            for k in report.kinds
        ],
        "attacks": [
            {
                "kind": a.kind.value,
                "agent": result.record.agent_ids[a.agent]
                if a.agent < len(result.record.agent_ids)
                else a.agent,
                "requests": a.requests,
                "detected": a.detected,
                "requests_to_denial": a.requests_to_denial,
                "requests_to_response": a.requests_to_response,
                "seconds_to_response": _round(a.seconds_to_response, 1),
            }
            for a in report.attacks
        ],
        "normal_agents": report.normal_agents,
        "normal_quarantined": report.normal_quarantined,
        "normal_quarantined_share": _round(report.normal_quarantined_share),
        "normal_alarmed": report.normal_alarmed,
        "legit_requests": report.legit_requests,
        "normal_response_denials": report.normal_response_denials,
        "collateral_denials": report.collateral_denials,
        "drift_requests": report.drift_requests,
        "drift_denied": report.drift_denied,
        "alarms": report.alarms,
        "true_alarms": report.true_alarms,
        "precision": _round(report.precision),
        "median_requests_to_denial": report.median_requests_to_denial,
        "median_requests_to_response": report.median_requests_to_response,
        "token_refusals": result.record.token_refusals,
        "risk_readings": result.record.risk_readings,
        "detector_lagged": result.record.lagged,
        "targets": report.targets,
        "targets_met": all(report.targets.values()),
    }
