"""User-facing errors: one sentence that names the problem and the fix, never a deep traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

__all__ = ["FacetrainError", "report_user_errors"]

T = TypeVar("T")


class FacetrainError(Exception):
    """An error the user can fix (bad path, bad value, malformed protocol line)."""


def report_user_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn a FacetrainError into a one-line message on stderr and exit status 2.

    Hydra would otherwise print a traceback; user mistakes deserve a sentence instead.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            user_error = _user_error_in(err)
            if user_error is None:
                raise
            print(f"facetrain: error: {user_error}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper


def _user_error_in(err: BaseException | None) -> FacetrainError | None:
    """The FacetrainError itself, or the one Hydra's instantiate wrapped (it raises `from` the cause)."""
    while err is not None:
        if isinstance(err, FacetrainError):
            return err
        err = err.__cause__
    return None
