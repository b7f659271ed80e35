"""facetrain's Optuna sweeper: Hydra's, except that a study in which no trial scored ends as a failed sweep does.

Hydra's Optuna sweeper asks Optuna for the best trial when the study ends; with none scored (a wrong data.root,
every sampled value refused) that is a traceback, and Hydra skips the sweep's end callbacks: no report, the MLflow
parent run left RUNNING, no line per trial. Here the sweep returns instead, once the trials' own status files
confirm that none completed, and Hydra's end callbacks run as after any sweep (SweepStatusCallback then exits 1).
The check lives in the sweeper, not in a callback, because only the sweeper's process sees the study end whatever
the launcher: with SLURM or another process-based launcher, the trials end elsewhere.

Hydra takes sweepers only from the hydra_plugins namespace, hence this package; SearchCheckCallback registers the
class before Hydra instantiates it, since an editable install hides this folder from Hydra's plugin scan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

__all__ = ["FacetrainOptunaSweeper"]


class FacetrainOptunaSweeper(Sweeper):
    """Hydra's OptunaSweeper with its settings unchanged, held rather than inherited so that this module imports
    without the optional plugin installed (Hydra imports every module of hydra_plugins when it scans)."""

    def __init__(self, **settings: Any) -> None:
        from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

        self._optuna = OptunaSweeper(**settings)
        self._sweep_dir: Path | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self._sweep_dir = Path(str(config.hydra.sweep.dir))
        self._optuna.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        try:
            return self._optuna.sweep(arguments)
        except ValueError:
            if not self._no_trial_completed():
                raise
            return None  # Hydra goes on to the sweep's end callbacks: the report, the lines, exit status 1

    def _no_trial_completed(self) -> bool:
        from facetrain.run.sweep_status import sweep_jobs

        jobs = sweep_jobs(self._sweep_dir) if self._sweep_dir is not None else []
        return bool(jobs) and all(job.status != "completed" for job in jobs)
