"""atomic_write: write a file (or folder) under a temporary name and rename it, so no reader sees half of it
(and a failed rewrite keeps the old one); check_apart: an output that replaces a folder must not be (or hold)
its input."""

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
    file; the rename is atomic on one filesystem (a folder over an old one: see `_swap_in`). The
    temporary name keeps `path`'s suffix (`np.savez` and friends append one when it is missing)
    and the process id (parallel writers).

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
        _swap_in(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
    return path


def _swap_in(tmp: Path, path: Path) -> None:
    """os.replace, which cannot put a folder over a non-empty folder or a file: the old one is moved aside
    first, and deleted only once the new one is in (put back if that fails)."""
    if not path.exists() or not (tmp.is_dir() or path.is_dir()):
        os.replace(tmp, path)
        return
    old = path.with_name(f".{path.stem}.old{os.getpid()}{path.suffix}")
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old) if old.is_dir() else old.unlink()


def check_apart(src: Path, out: Path, section: str) -> None:
    """Refuse `out` when it is `src` or a folder above it: replacing it (overwrite=true) would delete the input."""
    src, out = Path(src).resolve(), Path(out).resolve()
    if out == src or out in src.parents:
        raise FacetrainError(f"{section}.out={out} {'is' if out == src else 'holds'} {section}.src={src}; replacing "
                             f"it would delete the input: choose another {section}.out")
