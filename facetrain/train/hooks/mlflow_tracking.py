"""MlflowHook: the run in MLflow — the flattened config as params, each log window's scalars, the validations.

The same numbers TensorBoardHook writes, under the same names (`train/loss`, `val/lfw/acc_mean`), at the same
steps (iterations). The run's directory links to its MLflow run (mlflow.json): a resumed run continues it,
and `facetrain eval` / `report` add to it. In a sweep the run is a child of the sweep's parent run.
A tracker that cannot be reached, at the start or later, costs one warning line; training goes on.
"""

from __future__ import annotations

from pathlib import Path

from facetrain.tracking.link import Link, read_link, write_link
from facetrain.tracking.store import Store, open_store, quick_requests, warn_untracked
from facetrain.tracking.values import flat_params, log_files, log_values
from facetrain.train.hooks.base import Hook
from facetrain.train.state import TrainState

__all__ = ["MlflowHook"]


def _sweep_parent() -> Link | None:
    """The parent run of the sweep this job belongs to (MlflowSweepCallback links it from the sweep directory)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from facetrain.config import abs_path

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return read_link(abs_path(str(HydraConfig.get().sweep.dir)))


class MlflowHook(Hook):
    """Args (configs/logger/mlflow.yaml):
        tracking_uri: where runs go; a relative SQLite path is taken from the working directory.
        experiment: the MLflow experiment's name.
        run_name: the MLflow run's name (None: the run directory's name).
        artifact_location: a new experiment's artifact root (None: the store's default, see `open_store`).
    """

    main_process_only = True

    def __init__(self, tracking_uri: str, experiment: str = "facetrain", run_name: str | None = None,
                 artifact_location: str | None = None):
        self.tracking_uri, self.experiment = str(tracking_uri), "" if experiment is None else str(experiment)
        self.run_name, self.artifact_location = run_name, artifact_location
        self.store: Store | None = None
        self.run_id = ""

    def on_start(self, state: TrainState) -> None:
        self.store = open_store(self.tracking_uri, self.experiment, self.artifact_location)
        if self.store is None:
            return
        self._call(self._start, state)

    def _start(self, state: TrainState) -> None:
        client, params = self.store.client, flat_params(state.cfg)
        link = read_link(state.run_dir)
        if link is not None and link.tracking_uri == self.store.tracking_uri and state.start > 0:
            self.run_id = link.run_id  # a resumed run goes on in its MLflow run; params it has stay as logged
            client.update_run(self.run_id, status="RUNNING")
            params = {k: v for k, v in params.items() if k not in client.get_run(self.run_id).data.params}
        else:
            parent = _sweep_parent()
            tags = {"facetrain.run_dir": str(Path(state.run_dir).resolve())}
            if parent is not None and parent.tracking_uri == self.store.tracking_uri:
                tags["mlflow.parentRunId"] = parent.run_id
            run = client.create_run(self.store.experiment_id, run_name=self.run_name or Path(state.run_dir).name,
                                    tags=tags)
            self.run_id = run.info.run_id
            write_link(state.run_dir, Link(self.store.tracking_uri, self.store.experiment_id, self.run_id))
        log_values(client, self.run_id, params=params)

    def _call(self, fn, *args) -> None:
        """Run one logging call; the first failure warns once and turns tracking off for the rest of the run."""
        try:
            with quick_requests():
                fn(*args)
        except Exception as err:
            warn_untracked("the rest of this run", self.store.tracking_uri, err)
            self.store = None

    def on_log(self, state: TrainState, means: dict[str, float]) -> None:
        if self.store is None:
            return
        values = means | {"lr": state.optimizer.param_groups[0]["lr"], "skipped_steps": state.skipped_steps}
        values |= state.scalars()
        self._call(log_values, self.store.client, self.run_id, {f"train/{k}": v for k, v in values.items()},
                   state.iteration)

    def after_step(self, state: TrainState) -> None:
        if self.store is not None and state.pending_scalars:  # validation's val/... of this iteration
            self._call(log_values, self.store.client, self.run_id, dict(state.pending_scalars), state.iteration)

    def on_end(self, state: TrainState) -> None:
        if self.store is None:
            return
        hydra_dir = Path(state.run_dir) / ".hydra"
        self._call(log_files, self.store.client, self.run_id,
                   [hydra_dir / "config.yaml", hydra_dir / "overrides.yaml"], "hydra")
        if self.store is not None:  # FAILED: stopped before its last iteration (diverged, interrupted, a bug)
            status = "FINISHED" if state.iteration >= int(state.cfg.iterations) else "FAILED"
            self._call(self.store.client.set_terminated, self.run_id, status)
