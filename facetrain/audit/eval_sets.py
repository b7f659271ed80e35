"""Evaluation sets an audit compares the training people with: LFW-layout folders and insightface `.bin` files.

A folder's people are its subfolders. A `.bin` file names no one: its images are grouped into people by its
matched pairs (a matched pair is one person; identical image bytes are one image), so each group has a centre.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from facetrain.config import abs_path
from facetrain.data.formats.file_index import IMAGE_EXTENSIONS
from facetrain.data.images.image_io import decode_image, read_image
from facetrain.errors import FacetrainError

__all__ = ["EvalSet", "open_eval_set"]


@dataclass
class EvalSet:
    """One evaluation set's images (a loader by index), their cache keys, and their people."""

    name: str
    keys: list[str]
    labels: np.ndarray  # person index per image
    people: list[str]
    _root: Path | None = None
    _blobs: list[bytes] | None = None

    def image(self, i: int) -> torch.Tensor:
        if self._blobs is not None:
            return decode_image(self._blobs[i], None, "resize", f"{self.name}[{i}]")
        return read_image(self._root / self.keys[i].split("@", 1)[0])


def _folder(path: Path) -> EvalSet:
    rels, labels, people = [], [], []
    for person in sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")):
        files = sorted(f for f in person.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
        if files:
            people.append(person.name)
            rels += [f.relative_to(path).as_posix() for f in files]
            labels += [len(people) - 1] * len(files)
    if not rels:
        raise FacetrainError(f"audit.eval: {path} has no person folders with images; give an LFW-layout folder "
                             "(one folder of images per person) or a .bin file")
    keys = [f"{r}@{(path / r).stat().st_size}:{(path / r).stat().st_mtime_ns}" for r in rels]
    return EvalSet(path.name, keys, np.array(labels, np.int64), people, _root=path)


def _bin(path: Path) -> EvalSet:
    from facetrain.eval.protocols.bin import read_bin

    pairs = read_bin(path)
    first: dict[bytes, int] = {}
    blobs, ref = [], []
    for blob in pairs.images:  # the same photo in several pairs is one image
        key = hashlib.blake2b(blob, digest_size=16).digest()
        if key not in first:
            first[key] = len(blobs)
            blobs.append(blob)
        ref.append(first[key])
    ref = np.array(ref)
    same = np.flatnonzero(pairs.same)
    graph = coo_matrix((np.ones(len(same)), (ref[2 * same], ref[2 * same + 1])), shape=(len(blobs), len(blobs)))
    _, labels = connected_components(graph, directed=False)
    people = [f"{path.stem}#{p}" for p in range(int(labels.max()) + 1)]
    st = path.stat()
    keys = [f"{path}:{i}@{st.st_size}:{st.st_mtime_ns}" for i in range(len(blobs))]
    return EvalSet(path.name, keys, labels.astype(np.int64), people, _blobs=blobs)


def open_eval_set(spec: str, known: dict | None = None) -> EvalSet:
    """`lfw` (a name of data.eval_sets), an LFW-layout folder or a `.bin` file."""
    path = abs_path((known or {}).get(spec, spec))
    if path.is_dir():
        return _folder(path)
    if path.is_file() and path.suffix == ".bin":
        return _bin(path)
    raise FacetrainError(f"audit.eval: {spec!r} is neither an LFW-layout folder nor a .bin file ({path}); give "
                         "e.g. audit.eval=[data/synth/lfw,data/synth/faces_synth/lfw.bin]")
