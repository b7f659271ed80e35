"""Features file (.npz): `features` float32 [N, D] and `paths` [N] relative to the evaluation root."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetrain.atomic import atomic_write
from facetrain.errors import FacetrainError

__all__ = ["Features", "load_features", "save_features"]


@dataclass(frozen=True)
class Features:
    features: np.ndarray
    paths: list[str]

    def select(self, wanted: Sequence[str], source: str = "the features file") -> np.ndarray:
        """Rows for `wanted` paths, in that order; every missing path is an error that names some."""
        row = {p: i for i, p in enumerate(self.paths)}
        missing = [p for p in wanted if p not in row]
        if missing:
            raise FacetrainError(f"{source} lacks {len(missing)} of the {len(wanted)} images the protocol needs "
                                 f"(first: {', '.join(missing[:3])}); paths must be relative to the evaluation root")
        return self.features[[row[p] for p in wanted]]


def save_features(path: Path, features: np.ndarray, paths: Sequence[str]) -> None:
    atomic_write(path, lambda tmp: np.savez(tmp, features=np.asarray(features, dtype=np.float32),
                                            paths=np.array(list(paths), dtype=str)))


def load_features(path: Path) -> Features:
    if not path.is_file():
        raise FacetrainError(f"features file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            features, paths = data["features"], [str(p) for p in data["paths"]]
    except KeyError as err:
        raise FacetrainError(f"{path} lacks the array {err}; a features file holds `features` and `paths`") from None
    except Exception as err:  # numpy's own advice for pickled data is to load it unsafely: not ours to give
        pickled = "pickle" in str(err)  # a pickle file, or object arrays in an .npz
        why = "it holds pickled objects, not plain arrays" if pickled else str(err).splitlines()[0]
        raise FacetrainError(f"cannot read features file {path} ({why}); a features file is an .npz of arrays "
                             "`features` [N, D] and `paths` [N], as `facetrain eval` writes (features_<protocol>.npz)"
                             ) from None
    if features.ndim != 2 or len(features) != len(paths):
        raise FacetrainError(f"{path}: `features` must be [N, D] with one row per path; "
                             f"got shape {features.shape} for {len(paths)} paths")
    return Features(features.astype(np.float32), paths)
