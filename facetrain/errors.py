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
        except FacetrainError as err:
            print(f"facetrain: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
