"""status.json: how a run ended (completed, failed, diverged or interrupted) and why, in one line."""

from __future__ import annotations

import json
from pathlib import Path

from facetrain.atomic import atomic_write
from facetrain.run.metrics_file import update_metrics

__all__ = ["STATUSES", "STATUS_NAME", "read_status", "write_status"]

STATUS_NAME = "status.json"
STATUSES = ("completed", "failed", "diverged", "interrupted")


def write_status(run_dir: Path, status: str, reason: str = "") -> None:
    """Write run_dir/status.json and the same as `status` / `status_reason` in its metrics.json.

    Both, so a sweep summary can read the small file alone and a table of runs finds everything
    in metrics.json.
    """
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {STATUSES}")
    text = json.dumps({"status": status, "reason": reason}) + "\n"
    atomic_write(Path(run_dir) / STATUS_NAME, lambda tmp: tmp.write_text(text))
    update_metrics(run_dir, {"status": status, "status_reason": reason})


def read_status(run_dir: Path) -> dict | None:
    """{"status": ..., "reason": ...} of a run, or None when it recorded none (or the file is unreadable)."""
    try:
        return json.loads((Path(run_dir) / STATUS_NAME).read_text())
    except (OSError, ValueError):
        return None
