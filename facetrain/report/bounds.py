"""The lower bound on alpha (Ranjan et al. 2017, eq. 9) for the runs of a report, from what the runs recorded."""

from __future__ import annotations

from facetrain.errors import FacetrainError
from facetrain.heads.l2_scale import alpha_lower_bound
from facetrain.models.trained_run import TrainedRun
from facetrain.report.runs import RunRecord
from facetrain.run.checkpoint import checkpoint_path

__all__ = ["alpha_bounds", "run_alpha_bound"]


def alpha_bounds(runs: list[RunRecord]) -> list[float]:
    """The distinct bounds of the runs (one, unless they trained on different numbers of classes)."""
    found = {round(b, 6) for b in map(run_alpha_bound, runs) if b is not None}
    return sorted(found)


def run_alpha_bound(run: RunRecord) -> float | None:
    """An L2 run logs `train/alpha_bound`; otherwise eq. 9 from its class count (metrics.json or its checkpoint)
    and the head's p (its config; 0.9, the paper's, when the run used no L2 head)."""
    if run.number("train/alpha_bound") is not None:
        return run.number("train/alpha_bound")
    classes = run.number("train/num_classes") or _checkpoint_classes(run)
    if classes is None or classes <= 2:
        return None
    return alpha_lower_bound(int(classes), _head_p(run))


def _checkpoint_classes(run: RunRecord) -> float | None:
    path = checkpoint_path(run.dir)
    if not path.is_file():
        return None
    try:
        classes = TrainedRun.open(path).num_classes
    except FacetrainError:  # an unreadable checkpoint only costs the plot its bound line
        return None
    return float(classes) if classes is not None else None


def _head_p(run: RunRecord) -> float:
    import yaml

    path = run.dir / ".hydra" / "config.yaml"
    try:
        head = (yaml.safe_load(path.read_text()) or {}).get("head") or {}
    except (OSError, yaml.YAMLError):
        head = {}
    p = head.get("p", 0.9)
    return float(p) if isinstance(p, int | float) else 0.9
