"""atomic_write: write a file (or folder) under a temporary name and rename it, so no reader sees half of it;
check_apart: an output that replaces a folder must not be (or hold) its input."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from facetrain.errors import FacetrainError

__all__ = ["atomic_write", "check_apart"]


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


def check_apart(src: Path, out: Path, section: str) -> None:
    """Refuse `out` when it is `src` or a folder above it: replacing it (overwrite=true) would delete the input."""
    src, out = Path(src).resolve(), Path(out).resolve()
    if out == src or out in src.parents:
        raise FacetrainError(f"{section}.out={out} {'is' if out == src else 'holds'} {section}.src={src}; replacing "
                             f"it would delete the input: choose another {section}.out")
