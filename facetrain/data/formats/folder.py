"""FaceFolder: a tree of identity folders of images (CASIA-WebFace, MS-Celeb-1M, synthetic, your own)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from facetrain.config import abs_path
from facetrain.data.formats.file_index import IMAGE_EXTENSIONS, FolderIndex, load_index, scan_identity_folders
from facetrain.data.identity_dataset import IdentityDataset
from facetrain.data.images.image_io import read_bytes, read_image
from facetrain.data.loader_workers import loader_workers

__all__ = ["IMAGE_EXTENSIONS", "FolderIndex", "FaceFolder", "scan_identity_folders"]


class FaceFolder(IdentityDataset):
    """Images of `root/<identity>/<image>` as (uint8 [3, H, W] tensor, label).

    Args:
        root: the tree's top folder (relative paths are taken from where facetrain was run).
        input_size: (height, width) every image is brought to.
        fit: `resize` (aligned crops) or `crop` (centre crop to the aspect ratio, then resize).
        cache_dir: where the file index is cached (None: scan every time).
        verify: decode every image once at index time and drop the unreadable ones (cached).
        workers: processes for `verify` (`auto`: see `loader_workers`).
        progress: progress bars while indexing.
        **selection: identity selection, see `IdentityDataset`.
    """

    def __init__(self, root: str | Path, input_size: Sequence[int] = (112, 96), fit: str = "resize",
                 cache_dir: str | Path | None = None, verify: bool = False, workers: int | str = 2,
                 progress: bool = True, **selection):
        super().__init__(**selection)
        self.root = abs_path(root)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.fit = fit
        index = load_index(self.root, abs_path(cache_dir) if cache_dir else None, bool(verify),
                           max(1, loader_workers(workers)), bool(progress))
        self.bad_at_index = list(index.bad)
        keep = self._select(index.labels, index.classes, lambda: index.paths)
        # numpy bytes, not a list of str: DataLoader workers would otherwise copy the list page by
        # page as reference counts change (a known copy-on-read blow-up for millions of paths).
        self.paths = np.array([index.paths[k] for k in keep], dtype=np.bytes_)

    def _name(self, j: int) -> str:
        return self.paths[j].decode()

    def _encoded(self, j: int) -> bytes:
        return read_bytes(self.root / self._name(j))

    def _load(self, j: int) -> torch.Tensor:
        return read_image(self.root / self._name(j), self.input_size, self.fit)
