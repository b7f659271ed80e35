"""metrics.json: one flat JSON object of slash-separated keys, merged atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path

from facetrain.atomic import atomic_write

__all__ = ["read_metrics", "update_metrics"]


def read_metrics(run_dir: Path) -> dict:
    path = Path(run_dir) / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {}


def update_metrics(run_dir: Path, values: dict) -> dict:
    """Merge `values` into run_dir/metrics.json (plain floats; NaN becomes null) and return the result."""
    merged = read_metrics(run_dir)
    for key, value in values.items():
        value = float(value) if not isinstance(value, str) else value
        merged[key] = None if isinstance(value, float) and not math.isfinite(value) else value
    text = json.dumps(merged, indent=2, sort_keys=True) + "\n"
    atomic_write(Path(run_dir) / "metrics.json", lambda tmp: tmp.write_text(text))
    return merged
