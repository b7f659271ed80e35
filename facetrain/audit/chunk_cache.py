"""A resumable per-chunk cache: a long pass over a data set stores each finished chunk, so a killed audit resumes.

One `.npz` per chunk of consecutive samples, named by a digest of what decides its content (the pass, the
model, the samples' names and file fingerprints), so a changed file or model recomputes only its chunks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facetrain.atomic import atomic_write

__all__ = ["chunked_pass"]


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _load(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception:  # a damaged chunk is only a cache: compute it again
        return None


def chunked_pass(keys: Sequence[str], compute: Callable[[list[int]], dict[str, np.ndarray]], cache_dir: Path | None,
                 settings: dict, chunk: int = 4096, desc: str = "", progress: bool = True) -> dict[str, np.ndarray]:
    """`compute` over all samples in chunks, each chunk loaded from `cache_dir` when it was computed before.

    Args:
        keys: one string per sample that changes when the sample does (name + file fingerprint).
        compute: the arrays (first axis = samples) for a list of sample indices.
        cache_dir: where chunks are kept (None: no cache).
        settings: what else decides the result (the pass, the model file, its settings).
        chunk: samples per chunk.
        desc, progress: the progress bar.

    Returns:
        each array of `compute`, concatenated over all samples.
    """
    tag = _digest(settings)
    parts: list[dict[str, np.ndarray]] = []
    with tqdm(total=len(keys), desc=desc, unit="img", disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, len(keys), chunk):
            index = list(range(start, min(start + chunk, len(keys))))
            path = None if cache_dir is None else Path(cache_dir) / f"{tag}_{_digest([keys[i] for i in index])}.npz"
            arrays = _load(path) if path is not None and path.is_file() else None
            if arrays is None:
                arrays = compute(index)
                if path is not None:
                    atomic_write(path, lambda tmp, a=arrays: np.savez(tmp, **a))
            parts.append(arrays)
            bar.update(len(index))
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
