"""The runs a report covers: each job of a sweep directory, or run directories, read from the files they wrote."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from facetrain.errors import FacetrainError
from facetrain.run.metrics_file import read_metrics
from facetrain.run.status_file import STATUS_NAME, read_status
from facetrain.run.sweep_status import sweep_jobs

__all__ = ["RunRecord", "is_run_dir", "load_run", "load_runs", "read_run_metrics"]


@dataclass(frozen=True)
class RunRecord:
    """One run: its label, directory, overrides (key -> value as typed), metrics.json and how it ended."""

    name: str
    dir: Path
    overrides: dict[str, str]
    metrics: dict
    status: str
    reason: str
    wall_s: float | None
    choices: dict[str, str] = field(default_factory=dict)  # Hydra's group choices (loss: softmax, ...)
    baseline: bool = False  # given as `baseline=DIR`: a reference the plots draw as a line

    def number(self, key: str) -> float | None:
        """metrics[key] as a float, None when absent, null (NaN) or not a number."""
        value = self.metrics.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            return None
        return float(value)


def is_run_dir(path: Path) -> bool:
    """A run directory holds what one job writes; a sweep directory only holds such directories."""
    return (path / ".hydra").is_dir() or (path / "metrics.json").is_file() or (path / STATUS_NAME).is_file()


def load_runs(dirs: list[Path]) -> list[RunRecord]:
    """Every job of each sweep directory (by job number) and each run directory, in the order given."""
    runs = []
    for path in dirs:
        if not path.is_dir():
            raise FacetrainError(f"{path} is not a directory; give a sweep directory (runs/multirun/DATE) or run "
                                 "directories")
        if is_run_dir(path):
            runs.append(load_run(path, path.name))
            continue
        jobs = sweep_jobs(path)
        if not jobs:
            raise FacetrainError(f"{path} holds no runs (no metrics.json, status.json or .hydra/ in it or its "
                                 "subfolders); give a sweep directory (runs/multirun/DATE) or run directories")
        prefix = f"{path.name}/" if len(dirs) > 1 else ""
        runs += [load_run(job.dir, f"{prefix}{job.num}") for job in jobs]
    return runs


def load_run(run_dir: Path, name: str) -> RunRecord:
    """Read one run's overrides, choices, metrics and status; a run that recorded no status is `unknown`."""
    metrics = read_run_metrics(run_dir)
    recorded = read_status(run_dir)
    if recorded is None and "status" in metrics:
        recorded = {"status": metrics["status"], "reason": metrics.get("status_reason", "")}
    recorded = recorded or {"status": "unknown", "reason": f"it recorded no {STATUS_NAME}; see its log"}
    hydra_cfg = (_yaml(run_dir / ".hydra" / "hydra.yaml") or {}).get("hydra", {})
    choices = {str(k): str(v) for k, v in (hydra_cfg.get("runtime", {}).get("choices") or {}).items()}
    return RunRecord(name, run_dir, _overrides(run_dir), metrics, str(recorded.get("status")),
                     str(recorded.get("reason") or ""), _wall_seconds(run_dir, metrics), choices)


def read_run_metrics(run_dir: Path) -> dict:
    """metrics.json ({} when absent); a file that does not parse is the user's to fix."""
    try:
        return read_metrics(run_dir)
    except ValueError as err:
        raise FacetrainError(f"{run_dir / 'metrics.json'} is not valid JSON ({err}); fix or delete it") from None


def _yaml(path: Path):
    """The parsed file, None when it does not exist."""
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise FacetrainError(f"{path} is not valid YAML ({str(err).splitlines()[0]}); fix or delete it") from None


def _overrides(run_dir: Path) -> dict[str, str]:
    """`.hydra/overrides.yaml` (`alpha=16`, `+x=1`) as key -> value; `~key` deletions keep an empty value."""
    pairs = (str(line).split("=", 1) for line in _yaml(run_dir / ".hydra" / "overrides.yaml") or [])
    return {p[0].lstrip("+~"): (p[1] if len(p) > 1 else "") for p in pairs}


def _wall_seconds(run_dir: Path, metrics: dict) -> float | None:
    """From the job's start (Hydra writes .hydra/hydra.yaml) to its end (status.json); else training's seconds."""
    start, end = run_dir / ".hydra" / "hydra.yaml", run_dir / STATUS_NAME
    if start.is_file() and end.is_file():
        return max(0.0, end.stat().st_mtime - start.stat().st_mtime)
    seconds = metrics.get("train/seconds")
    return float(seconds) if isinstance(seconds, int | float) else None
