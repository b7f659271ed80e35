"""FaceFolder: a tree of identity folders of images (CASIA-WebFace, MS-Celeb-1M, synthetic)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from facetrain.config import abs_path
from facetrain.data.image_io import read_image
from facetrain.errors import FacetrainError

__all__ = ["IMAGE_EXTENSIONS", "FolderIndex", "FaceFolder", "scan_identity_folders"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class FolderIndex:
    """Relative image paths, their integer labels, and the identity name of each label."""

    paths: list[str]
    labels: list[int]
    classes: list[str]


def scan_identity_folders(root: Path) -> FolderIndex:
    """List `root/<identity>/<image>` files; labels follow the sorted identity names."""
    if not root.is_dir():
        raise FacetrainError(
            f"data folder {root} does not exist; run `facetrain data synth` for the demo data "
            "or point data.root=... at a folder of identity folders"
        )
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(
            f.name for f in (root / name).iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()
        )
        paths += [f"{name}/{f}" for f in files]
        labels += [label] * len(files)
    if not paths:
        raise FacetrainError(
            f"no images found under {root}; expected {root}/<identity>/<image>.jpg "
            f"(extensions: {', '.join(IMAGE_EXTENSIONS)})"
        )
    return FolderIndex(paths=paths, labels=labels, classes=classes)


class FaceFolder(Dataset):
    """Images of a folder-of-identities tree as (uint8 [3, H, W] tensor, label).

    Args:
        root: the tree's top folder (relative paths are taken from where facetrain was run).
        input_size: (height, width) every image is resized to.
    """

    def __init__(self, root: str | Path, input_size: Sequence[int] = (112, 96)):
        self.root = abs_path(root)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.index = scan_identity_folders(self.root)

    @property
    def num_classes(self) -> int:
        return len(self.index.classes)

    def __len__(self) -> int:
        return len(self.index.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = read_image(self.root / self.index.paths[i], self.input_size)
        return image, self.index.labels[i]
