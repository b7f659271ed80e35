"""MlflowSweepCallback: with logger=mlflow, a `-m` sweep (grid or Optuna study) is one parent MLflow run.

The parent is created before the first job and linked from the sweep directory (mlflow.json), so each job's
run, in this process or on another machine of a launcher, finds it and becomes its child (MLflow's
`mlflow.parentRunId` tag). At the end the parent gets the jobs' counts, the best validation score and its
job, and the study's results file, and ends FINISHED (every job completed) or FAILED.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

__all__ = ["MlflowSweepCallback"]


def _sweep_dir(config: DictConfig) -> Path:
    from facetrain.config import abs_path

    return abs_path(str(config.hydra.sweep.dir))


class MlflowSweepCallback(Callback):
    """Registered under `hydra.callbacks`; does nothing unless the sweep's config selects the mlflow logger."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        settings = OmegaConf.select(config, "logger.mlflow", default=None)
        if settings is None:
            return
        from facetrain.tracking.link import Link, write_link
        from facetrain.tracking.store import open_store, quick_requests, warn_untracked

        sweep_dir = _sweep_dir(config)
        store = open_store(settings.tracking_uri, settings.experiment, settings.get("artifact_location"),
                           what="the sweep")
        if store is None:
            return
        overrides = " ".join(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
        tags = {"facetrain.sweep_dir": str(sweep_dir), "facetrain.overrides": overrides,
                "facetrain.sweeper": str(OmegaConf.select(config, "hydra.sweeper._target_", default=""))}
        try:
            with quick_requests():
                run = store.client.create_run(store.experiment_id, run_name=f"sweep {sweep_dir.name}", tags=tags)
        except Exception as err:
            warn_untracked("the sweep", store.tracking_uri, err)
            return
        sweep_dir.mkdir(parents=True, exist_ok=True)
        write_link(sweep_dir, Link(store.tracking_uri, store.experiment_id, run.info.run_id))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from facetrain.tracking.link import read_link

        sweep_dir = _sweep_dir(config)
        link = read_link(sweep_dir)
        if link is None or OmegaConf.select(config, "logger.mlflow", default=None) is None:
            return
        from facetrain.run.metrics_file import read_metrics
        from facetrain.run.sweep_status import sweep_jobs
        from facetrain.tracking.results import log_results
        from facetrain.tracking.store import quick_requests, warn_untracked

        jobs = sweep_jobs(sweep_dir)
        completed = [job for job in jobs if job.status == "completed"]
        key = f"val/best/{OmegaConf.select(config, 'val.metric', default='lfw/acc_mean')}"
        scores = [(read_metrics(job.dir).get(key), job) for job in completed]
        scores = [(v, job) for v, job in scores if isinstance(v, int | float) and math.isfinite(v)]
        summary: dict[str, float] = {"sweep/jobs": len(jobs), "sweep/completed": len(completed)}
        if scores:
            best, job = max(scores, key=lambda pair: pair[0])
            summary |= {f"sweep/best/{key}": best, "sweep/best_job": job.num}
        if not log_results(sweep_dir, summary, [sweep_dir / "optimization_results.yaml", sweep_dir / "multirun.yaml"],
                           what="the sweep's summary"):
            return
        try:
            from mlflow.tracking import MlflowClient

            with quick_requests():
                MlflowClient(link.tracking_uri).set_terminated(
                    link.run_id, "FINISHED" if len(completed) == len(jobs) else "FAILED")
        except Exception as err:
            warn_untracked("the sweep's end", link.tracking_uri, err)
