"""What every report plot returns: its drawn data (so tests check numbers, not pixels) beside the PNG it wrote.

A plot of the report is a function `draw(runs, cfg, out_dir) -> list[Plot]`, named under `plots:` in
configs/report.yaml; it draws with `facetrain.plotting.new_axes` and saves with `save_png`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Plot"]


@dataclass
class Plot:
    """A written PNG and what it shows: curves (label -> xs, ys) with error bars, single points, horizontal and
    vertical lines."""

    path: Path
    title: str
    series: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    errors: dict[str, list[float]] = field(default_factory=dict)  # a series' error bars (standard error; 0 = none)
    points: dict[str, tuple[float, float]] = field(default_factory=dict)
    hlines: dict[str, float] = field(default_factory=dict)
    vlines: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the plot leaves out, and why
