"""open_store: an MLflow client on a tracking URI and an experiment, or one warning line and None.

The default store is a SQLite file inside runs/ (MLflow 3 refuses its old file store), so tracking works
offline. A relative SQLite path is taken from where facetrain runs, as every other path, and a new
experiment's artifacts go next to that file (MLflow would put them in the working directory). A remote
server is asked once with a short timeout and no retries, so an unreachable one costs seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from facetrain.config import abs_path

__all__ = ["Store", "absolute_uri", "open_store", "quick_requests", "warn_untracked"]

log = logging.getLogger(__name__)

_SQLITE = "sqlite:///"
# MLflow's HTTP client retries 7 times with backoff (minutes) and waits 120 s per request by default
_QUICK = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
_NOISY = ("mlflow.store.db.utils", "alembic", "mlflow.tracking._tracking_service.client")


@dataclass(frozen=True)
class Store:
    """A reachable tracking store and the experiment runs go to."""

    client: object  # mlflow.tracking.MlflowClient
    tracking_uri: str
    experiment_id: str


def absolute_uri(tracking_uri: str) -> str:
    """`sqlite:///runs/mlflow.db` -> `sqlite:////abs/runs/mlflow.db` (a sweep's jobs and later evals agree on it)."""
    uri = str(tracking_uri)
    if uri.startswith(_SQLITE) and not uri.startswith(_SQLITE + "/") and ":memory:" not in uri:
        return _SQLITE + str(abs_path(uri[len(_SQLITE):]))
    return uri


def _default_artifacts(uri: str) -> str | None:
    if uri.startswith(_SQLITE + "/"):
        return (Path(uri[len(_SQLITE):]).parent / "mlartifacts").as_uri()
    return None


@contextlib.contextmanager
def quick_requests():
    """MLflow's HTTP calls inside fail fast (a tracker that went away must not stall training)."""
    saved = {key: os.environ.get(key) for key in _QUICK}
    os.environ.update({key: os.environ.get(key, value) for key, value in _QUICK.items()})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def warn_untracked(what: str, uri: str, err: BaseException) -> None:
    """One line: what is not tracked, where, why (the error's first line) and how to fix it."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    why = (lines[0] if lines else type(err).__name__)[:300]
    log.warning("MLflow: %s not tracked: tracking_uri=%s failed (%s: %s); the run itself goes on - fix "
                "logger.mlflow.tracking_uri or start the tracking server", what, uri, type(err).__name__, why)


def open_store(tracking_uri: str, experiment: str, artifact_location: str | None = None,
               what: str = "this run") -> Store | None:
    """Connect and find (or create) the experiment; None after one warning line when that fails.

    Args:
        tracking_uri: any MLflow tracking URI; a relative SQLite path is made absolute.
        experiment: the experiment's name.
        artifact_location: a new experiment's artifact root (None: next to a local SQLite file, else the server's).
        what: what goes untracked, for the warning.
    """
    uri = absolute_uri(tracking_uri)
    if experiment is None or not str(experiment).strip():  # MLflow's "Invalid experiment name", blamed on the URI
        log.warning("MLflow: %s not tracked: logger.mlflow.experiment=%r names no experiment; the run itself goes "
                    "on - set logger.mlflow.experiment=NAME (created when missing)", what, experiment)
        return None
    try:
        if uri.startswith(_SQLITE + "/"):
            Path(uri[len(_SQLITE):]).parent.mkdir(parents=True, exist_ok=True)
        for name in _NOISY:  # table creation and migrations log a line each
            logging.getLogger(name).setLevel(logging.WARNING)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        with quick_requests():
            found = client.get_experiment_by_name(str(experiment))
            if found is not None:
                return Store(client, uri, found.experiment_id)
            location = artifact_location or _default_artifacts(uri)
            return Store(client, uri, client.create_experiment(str(experiment), artifact_location=location))
    except Exception as err:  # unreachable server, unwritable file, unknown scheme, missing package
        warn_untracked(what, uri, err)
        return None
