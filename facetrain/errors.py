"""User-facing errors: one sentence that names the problem and the fix, never a deep traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

__all__ = ["FacetrainError", "TrainingDiverged", "TrainingInterrupted", "report_user_errors", "user_error_in"]

T = TypeVar("T")


class FacetrainError(Exception):
    """An error the user can fix (bad path, bad value, malformed protocol line)."""

    exit_status = 2


class TrainingDiverged(FacetrainError):
    """The loss stayed non-finite: the run stopped, its last good state kept (a sweep records it and goes on)."""

    exit_status = 3


class TrainingInterrupted(FacetrainError):
    """SIGTERM, SIGINT or SIGUSR2: a checkpoint was saved at the current iteration; exit with 128 + the signal number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = int(signum)
        self.exit_status = 128 + self.signum


def report_user_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn a FacetrainError into a one-line message on stderr and its exit status (2; diverged 3; signals 128+N).

    Hydra would otherwise print a traceback; user mistakes deserve a sentence instead.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            user_error = user_error_in(err)
            if user_error is None:
                raise
            print(f"facetrain: error: {user_error}", file=sys.stderr)
            raise SystemExit(user_error.exit_status) from None

    return wrapper


def user_error_in(err: BaseException | None) -> FacetrainError | None:
    """The FacetrainError itself, or the one Hydra's instantiate wrapped (it raises `from` the cause)."""
    while err is not None:
        if isinstance(err, FacetrainError):
            return err
        err = err.__cause__
    return None
