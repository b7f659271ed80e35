"""Config helpers: OmegaConf resolvers, path resolution and validation of headline keys."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from pathlib import Path

from hydra.utils import to_absolute_path
from omegaconf import OmegaConf

from facetrain.errors import FacetrainError

__all__ = ["CONFIG_PATH", "ALPHA_WORDS", "abs_path", "check_alpha", "check_count", "job_folder", "launch_time",
           "register_resolvers", "set_launch_time"]

# Hydra finds the configs through the package (configs/ is installed as facetrain.configs).
CONFIG_PATH = "pkg://facetrain.configs"
ALPHA_WORDS = ("auto", "trained")
_LAUNCH_TIME: list[datetime] = []  # set once: the first reading, or rank 0's (facetrain.distributed.process_group)


def launch_time() -> datetime:
    """When this run started: the first time anyone asked, unless a distributed launch set rank 0's time."""
    if not _LAUNCH_TIME:
        _LAUNCH_TIME.append(datetime.now())
    return _LAUNCH_TIME[0]


def set_launch_time(when: datetime) -> None:
    _LAUNCH_TIME[:] = [when]


_JOB_FOLDER_BYTES = 120


def job_folder(num, overrides: str) -> str:
    """A sweep job's folder name, `<num>_<overrides>` (Hydra's override_dirname): a `/` in a value becomes `_`
    rather than nesting folders, and a name past 120 bytes is cut and ends in 8 hex digits of the whole name's
    hash, so jobs stay apart (a folder name holds 255 bytes; a dozen overrides or a study's floats pass that)."""
    name = f"{num}_{overrides}".replace("/", "_").replace("\\", "_")
    raw = name.encode()
    if len(raw) <= _JOB_FOLDER_BYTES:
        return name
    digest = hashlib.blake2b(raw, digest_size=4).hexdigest()
    return raw[:_JOB_FOLDER_BYTES - 9].decode(errors="ignore") + "-" + digest


def register_resolvers() -> None:
    """Register facetrain's resolvers once: `${ft.frac_of:N,a,b}` = round(N * a / b); `${ft.now:FORMAT}` =
    Hydra's `${now:FORMAT}` of the launch time, the same on every rank of a torchrun or submitit launch;
    `${ft.job_folder:NUM,OVERRIDES}` = `job_folder`."""
    if not OmegaConf.has_resolver("ft.frac_of"):
        OmegaConf.register_new_resolver("ft.frac_of", lambda n, a, b: int(round(float(n) * float(a) / float(b))))
    if not OmegaConf.has_resolver("ft.now"):  # cached like Hydra's now: a config copied or pickled to another
        # process (the submitit launcher's tasks) keeps the submitting process's time, so all use one directory
        OmegaConf.register_new_resolver("ft.now", lambda pattern: launch_time().strftime(pattern), use_cache=True)
    if not OmegaConf.has_resolver("ft.job_folder"):
        OmegaConf.register_new_resolver("ft.job_folder", job_folder)


def abs_path(path: str | Path) -> Path:
    """A path relative to where the user ran facetrain (Hydra may change directory)."""
    return Path(to_absolute_path(str(path)))


def check_alpha(alpha) -> float | str:
    """Validate the top-level `alpha`: a positive number, `auto` or `trained`."""
    if isinstance(alpha, str):
        word = alpha.strip().lower()
        if word in ALPHA_WORDS:
            return word
        try:
            alpha = float(word)
        except ValueError:
            raise FacetrainError(
                f"alpha={alpha!r} is not a number; use a positive number (alpha=16), "
                "alpha=auto (the eq. 9 lower bound) or alpha=trained (learned)"
            ) from None
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha):
        raise FacetrainError(f"alpha={alpha!r} is not valid; use a positive number, auto or trained")
    if alpha <= 0:
        raise FacetrainError(f"alpha={alpha} must be > 0 (it is the radius of the feature hypersphere)")
    return float(alpha)


def check_count(key: str, value, low: int = 0, meaning: str = "") -> int:
    """`value` when it is an integer >= `low`; else one line naming `key`, the value and what it takes (a count
    set on the command line reaches a command as any type: a word, a float, a list)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise FacetrainError(f"{key}={value!r} must be an integer >= {low}" + (f" ({meaning})" if meaning else ""))
    return value


register_resolvers()
