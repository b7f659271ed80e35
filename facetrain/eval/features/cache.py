"""Embedding cache: features of one model (checkpoint + embedding settings) on one evaluation root.

One .npz per key; rows are reused per image when the image file (size, mtime) and its crop are unchanged,
so a second protocol over the same images (BLUFR after LFW) or a re-run embeds only what is new.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from facetrain.atomic import atomic_write

__all__ = ["cache_file", "cached_features", "file_fingerprint"]


def file_fingerprint(path: Path, box: Sequence[float] | None = None) -> str:
    """What must not change for a cached row to stay valid: the file's size and mtime, and the crop box."""
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}" + ("" if box is None else ":" + ",".join(f"{float(v):g}" for v in box))


def cache_file(cache_dir: Path, checkpoint: Path, settings: dict) -> Path:
    """The cache file for a checkpoint (path, size, mtime) and the embedding settings (mirror, root, ...)."""
    st = checkpoint.stat()
    key = json.dumps({"checkpoint": str(checkpoint.resolve()), "size": st.st_size, "mtime": st.st_mtime_ns,
                      **settings}, sort_keys=True)
    return cache_dir / f"features_{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def _load(path: Path) -> dict[str, tuple[str, np.ndarray]]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            return {str(p): (str(f), row) for p, f, row in zip(data["paths"], data["fingerprints"], data["features"],
                                                               strict=True)}
    except Exception:  # a damaged cache is only a cache: embed again
        return {}


def cached_features(path: Path, keys: Sequence[str], fingerprints: Sequence[str],
                    embed: Callable[[list[int]], np.ndarray]) -> tuple[np.ndarray, int]:
    """Rows for `keys`, taken from the cache when their fingerprint matches, embedded otherwise.

    Args:
        path: the cache file (created or extended).
        keys: feature names (paths relative to the evaluation root).
        fingerprints: one per key (file_fingerprint).
        embed: computes the rows of the given key indices.

    Returns:
        (features [len(keys), D], how many rows had to be embedded).
    """
    stored = _load(path)
    todo = [i for i, (k, f) in enumerate(zip(keys, fingerprints, strict=True))
            if k not in stored or stored[k][0] != f]
    new = embed(todo) if todo else None
    if new is not None and stored and new.shape[1] != next(iter(stored.values()))[1].shape[0]:
        stored = {}  # another feature width (e.g. mirror mode changed behind the key): start over
        todo, new = list(range(len(keys))), embed(list(range(len(keys))))
    for j, i in enumerate(todo):
        stored[keys[i]] = (fingerprints[i], new[j])
    rows = np.stack([stored[k][1] for k in keys]).astype(np.float32) if keys else np.zeros((0, 0), np.float32)
    if todo:
        names = list(stored)
        atomic_write(path, lambda tmp: np.savez(
            tmp, paths=np.array(names, dtype=str), fingerprints=np.array([stored[n][0] for n in names], dtype=str),
            features=np.stack([stored[n][1] for n in names]).astype(np.float32)))
    return rows, len(todo)
