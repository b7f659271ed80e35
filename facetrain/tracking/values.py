"""What MLflow accepts: the config flattened to params, metric names in its alphabet, batches within its limits."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

__all__ = ["flat_params", "log_files", "log_values", "metric_name"]

_NOT_ALLOWED = re.compile(r"[^/\w.\- :]")  # MLflow's metric and param names: letters, digits, _ - . space : /
_MAX_VALUE = 6000  # MLflow's longest param value
_BATCH_METRICS, _BATCH_PARAMS = 1000, 100  # log_batch's limits


def metric_name(key: str) -> str:
    """`ijba/tar@far=0.001_mean` -> `ijba/tar_at_far_0.001_mean`; names MLflow accepts stay as they are."""
    return _NOT_ALLOWED.sub("_", key.replace("@", "_at_"))


def flat_params(cfg: DictConfig) -> dict[str, str]:
    """Every leaf of the config (Hydra's own node left out) as `group.key` -> its value as text, resolved where it
    resolves (a key that does not, outside a Hydra run, is kept as written)."""
    try:
        tree = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation only Hydra's run can resolve (${hydra:...})
        tree = OmegaConf.to_container(cfg, resolve=False)
    tree.pop("hydra", None)
    flat: dict[str, str] = {}
    _flatten(tree, "", flat)
    return flat


def _flatten(node, prefix: str, out: dict[str, str]) -> None:
    if isinstance(node, Mapping) and node:
        for key, value in node.items():
            _flatten(value, f"{prefix}{key}.", out)
        return
    text = "null" if node is None else str(node)
    out[metric_name(prefix[:-1])] = text[:_MAX_VALUE]


def log_values(client, run_id: str, metrics: Mapping[str, object] = (), step: int = 0,
               params: Mapping[str, str] | None = None) -> None:
    """Log the finite numbers of `metrics` at `step` (strings, None and NaN are left out) and `params`, batched."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    rows = [Metric(metric_name(k), float(v), now, int(step)) for k, v in dict(metrics).items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
    for i in range(0, len(rows), _BATCH_METRICS):
        client.log_batch(run_id, metrics=rows[i:i + _BATCH_METRICS])
    pairs = [Param(k, v) for k, v in (params or {}).items()]
    for i in range(0, len(pairs), _BATCH_PARAMS):
        client.log_batch(run_id, params=pairs[i:i + _BATCH_PARAMS])


def log_files(client, run_id: str, files: Iterable[Path], artifact_path: str | None = None) -> list[Path]:
    """Upload the files that exist; returns those."""
    present = [Path(f) for f in files if Path(f).is_file()]
    for path in present:
        client.log_artifact(run_id, str(path), artifact_path)
    return present
