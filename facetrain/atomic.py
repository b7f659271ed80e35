"""atomic_write: write a file (or folder) under a temporary name and rename it, so no reader sees half of it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a temporary sibling of `path`, then rename it to `path`.

    A crash (or a kill) mid-write leaves the old `path` intact and at most a hidden temporary
    file; the rename is atomic on one filesystem. The temporary name keeps `path`'s suffix
    (`np.savez` and friends append one when it is missing) and the process id (parallel writers).

    Args:
        path: the file or folder to (re)write.
        write: writes the content to the path it is given.

    Returns:
        `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
    return path
