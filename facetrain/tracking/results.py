"""log_results: what `facetrain eval` and `facetrain report` add to a directory's MLflow run (when it has one).

The protocol metrics and ROC plot of an evaluation, a report's table and plots, and the run's own result files
that other commands write beside its checkpoints (a calibration, a model card) when they are there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from facetrain.tracking.link import read_link
from facetrain.tracking.store import quick_requests, warn_untracked
from facetrain.tracking.values import log_files, log_values

__all__ = ["RESULT_FILES", "log_results"]

# a run directory's result files, uploaded whenever the run's MLflow run is updated and they exist (the model
# card of `facetrain export` is logged by the export itself: it sits beside the exported file)
RESULT_FILES = ("calibration.json",)


def log_results(directory: Path, metrics: Mapping[str, object] = (), files: Iterable[Path] = (), step: int = 0,
                artifact_path: str | None = None, what: str = "these results") -> bool:
    """Log `metrics` at `step` and `files` (plus the directory's RESULT_FILES) to the directory's MLflow run.

    Returns False, quietly, when the directory has no MLflow run; False after one warning line when the
    tracker cannot be reached. Never raises: the command's own output is already written.
    """
    link = read_link(directory)
    if link is None:
        return False
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=link.tracking_uri)
        with quick_requests():
            log_values(client, link.run_id, metrics, step)
            log_files(client, link.run_id, files, artifact_path)
            log_files(client, link.run_id, [Path(directory) / name for name in RESULT_FILES])
    except Exception as err:
        warn_untracked(what, link.tracking_uri, err)
        return False
    return True
