"""The risk chart is a real PNG with the run drawn in it."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image

from tessera.simulate.chart import ChartData, write_chart

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_writes_a_valid_png(tmp_path: Path) -> None:
    points = [(h * 600.0, min(100, max(0, (h - 30) * 9))) for h in range(60)]
    data = ChartData(
        "agent-1: risk",
        points,
        responses=[32 * 600.0, 33 * 600.0],
        attack=(30 * 600.0, 36 * 600.0),
        threshold=50,
    )
    path = write_chart(data, tmp_path / "nested" / "risk.png")
    raw = path.read_bytes()
    assert raw.startswith(PNG_SIGNATURE)
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert width > 600
    assert height > 300
    # Not a blank canvas: the curve, the attack band and the markers put colour on it.
    assert len({tuple(px) for px in image.reshape(-1, image.shape[2])[::97]}) > 10


def test_a_run_without_attack_or_responses_still_draws(tmp_path: Path) -> None:
    data = ChartData(
        "quiet agent", [(0.0, 0), (3600.0, 8), (7200.0, 2)], responses=[], attack=None, threshold=50
    )
    path = write_chart(data, tmp_path / "quiet.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
