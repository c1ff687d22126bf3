"""A PNG of one agent's risk over a run, with the attack and the responses marked (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: render to files only

import matplotlib.pyplot as plt

HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class ChartData:
    title: str
    points: Sequence[tuple[float, int]]  # (simulated seconds, risk after the request)
    responses: Sequence[float]  # simulated seconds of requests denied as a response
    attack: tuple[float, float] | None  # (first, last malicious request), simulated seconds
    threshold: int
    quarantined_at: float | None = None


def write_chart(data: ChartData, path: Path) -> Path:
    """Render ``data`` to ``path`` (PNG); returns the path."""
    figure, axes = plt.subplots(figsize=(10, 4.2), dpi=110)
    try:
        hours = [at / HOUR for at, _ in data.points]
        scores = [score for _, score in data.points]
        axes.step(hours, scores, where="post", color="#1f5fa8", linewidth=1.4, label="risk score")
        axes.axhline(data.threshold, color="#b8860b", linestyle="--", linewidth=1, label="response threshold")
        if data.attack is not None:
            first, last = data.attack
            axes.axvspan(first / HOUR, last / HOUR, color="#d62728", alpha=0.12, label="attack")
            axes.axvline(first / HOUR, color="#d62728", linewidth=1.2)
        if data.responses:
            axes.scatter(
                [at / HOUR for at in data.responses],
                [100] * len(data.responses),
                marker="v",
                color="#d62728",
                s=18,
                zorder=3,
                label="denied as a response",
            )
        if data.quarantined_at is not None:
            axes.axvline(
                data.quarantined_at / HOUR, color="black", linestyle=":", label="agent stopped (quarantine)"
            )
        axes.set_ylim(-2, 106)
        axes.set_xlabel("simulated hours since the start of the run")
        axes.set_ylabel("risk (0-100)")
        axes.set_title(data.title, fontsize=10)
        axes.grid(alpha=0.25)
        axes.legend(loc="upper left", fontsize=8, framealpha=0.9)
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return path
