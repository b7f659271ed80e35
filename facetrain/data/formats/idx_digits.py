"""MNIST and Fashion-MNIST from their standard IDX files: 1-channel 28x28 uint8 images for the LeNet++ experiments."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from facetrain.config import abs_path
from facetrain.data.labelled import LabelledDataset
from facetrain.errors import FacetrainError

__all__ = ["IdxDigits", "read_idx", "write_idx"]

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"); data are big-endian.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def read_idx(path: Path) -> np.ndarray:
    """The array of an IDX file (`.gz` is read transparently)."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise FacetrainError(f"{path} is not an IDX file (bad magic number); expected MNIST's format")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4).tolist()
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise FacetrainError(f"{path} has {len(raw)} bytes, its header promises {expected}; the file is damaged")
    return np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write `array` (uint8) as an IDX file (tests and tools make small digit sets with it)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def _find(root: Path, name: str) -> Path:
    for folder in (root, root / "raw"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise FacetrainError(f"{name}[.gz] not found in {root}; point data.root=... at the folder holding the IDX "
                         "files (Debian: apt install dataset-fashion-mnist puts them in /usr/share/datasets)")


class IdxDigits(LabelledDataset):
    """(uint8 [C, 28, 28] tensor, label) from `<split>-images-idx3-ubyte` / `<split>-labels-idx1-ubyte`.

    Args:
        root: folder with the four IDX files (or a `raw/` subfolder, as torchvision stores them).
        split: `train` (60,000) or `test` (10,000, the `t10k-*` files).
        channels: 1 (LeNet++) or 3 (the grey image repeated, for backbones that expect RGB).
    """

    def __init__(self, root: str | Path, split: str = "train", channels: int = 1):
        if split not in _SPLIT_PREFIX:
            raise FacetrainError(f"data split={split!r} is not known; use train or test")
        if channels not in (1, 3):
            raise FacetrainError(f"channels={channels} must be 1 or 3")
        self.root = abs_path(root)
        prefix = _SPLIT_PREFIX[split]
        images = read_idx(_find(self.root, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find(self.root, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise FacetrainError(f"IDX files in {self.root} disagree: images {images.shape}, labels {labels.shape}")
        self.images = torch.from_numpy(images.astype(np.uint8)).unsqueeze(1)
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.channels = channels
        self.classes = [str(c) for c in range(int(self.labels.max()) + 1)]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = self.images[i]
        return (image.expand(3, -1, -1).contiguous() if self.channels == 3 else image), int(self.labels[i])
