"""record_outcome: a Hydra job writes how it ended (status.json); in a sweep a failed job ends quietly.

Hydra's `run_job` turns an exception into a FAILED job, and the basic sweeper then raises the first
failure after its batch, so one bad value of a `-m` sweep would cost every job after it. A job of a
sweep therefore records its failure and returns; `SweepStatusCallback` reports all of them at the end.
An interruption (SIGTERM/SIGINT/SIGUSR2) still stops the sweep: a preempted sweep is rerun as a whole.
Under submitit an interruption by its preemption signal then goes to submitit's requeue (on rank 0 it
requeues the job and exits): see `facetrain.run.submitit_requeue`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from facetrain.config import abs_path
from facetrain.errors import TrainingDiverged, TrainingInterrupted, user_error_in
from facetrain.run.submitit_requeue import requeue_through_submitit

__all__ = ["classify_failure", "record_outcome"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def record_outcome(task: Callable[[DictConfig], T]) -> Callable[[DictConfig], T | None]:
    """Wrap a Hydra task function: record completed / failed / diverged / interrupted in its run directories.

    Outside a sweep the exception goes on (to `report_user_errors`, or Hydra's traceback for a bug).
    In a sweep, a failed or diverged job logs its reason (a bug also its traceback, to the job's log
    file) and returns None, so the sweeper starts the next job.
    """

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> T | None:
        try:
            result = task(cfg)
        except KeyboardInterrupt:
            _record(cfg, "interrupted", "interrupted by SIGINT (Ctrl-C)")
            raise
        except Exception as err:
            status, reason = classify_failure(err)
            _record(cfg, status, reason)
            if status == "interrupted":
                requeue_through_submitit(user_error_in(err))  # last.pt is written: submitit may requeue
                raise
            if not _in_sweep():
                raise
            _log_failure(err, status, reason)
            return None
        _record(cfg, "completed", "")
        return result

    return wrapper


def classify_failure(err: BaseException) -> tuple[str, str]:
    """(status, one-line reason): a user error or divergence says its sentence; a bug its type and message."""
    user_error = user_error_in(err)
    if isinstance(user_error, TrainingInterrupted):
        return "interrupted", _one_line(user_error)
    if isinstance(user_error, TrainingDiverged):
        return "diverged", _one_line(user_error)
    if user_error is not None:
        return "failed", _one_line(user_error)
    return "failed", f"{type(err).__name__}: {_one_line(err)}"


def _one_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _run_dirs(cfg: DictConfig) -> list[Path]:
    """The job's output directory (Hydra made it) and `run_dir` when that exists: never a new folder."""
    dirs = []
    if HydraConfig.initialized():
        dirs.append(Path(HydraConfig.get().runtime.output_dir).resolve())
    run_dir = OmegaConf.select(cfg, "run_dir", default=None, throw_on_resolution_failure=False)
    if run_dir:
        path = abs_path(run_dir).resolve()
        if path.is_dir() and path not in dirs:
            dirs.append(path)
    return dirs


def _record(cfg: DictConfig, status: str, reason: str) -> None:
    # imported here: facetrain.run imports torch, and the CLI should start without it
    from facetrain.distributed.rank import is_main_process
    from facetrain.run.status_file import write_status

    if not is_main_process():  # rank 0 writes a run's files
        return
    for run_dir in _run_dirs(cfg):
        try:
            write_status(run_dir, status, reason)
        except OSError as err:  # the job's own outcome matters more than its record
            log.warning("could not record status %s in %s: %s", status, run_dir, err)


def _log_failure(err: Exception, status: str, reason: str) -> None:
    """The reason on the console and in the log; a bug's traceback in the job's log file only."""
    log.error("this job %s: %s", status, reason)
    if user_error_in(err) is not None:
        return
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "traceback of the failure above:", (),
                            (type(err), err, err.__traceback__))
    for handler in files:
        handler.handle(record)
    if not files:  # no job log file (hydra/job_logging=none): the console is the only place left
        log.handle(record)
