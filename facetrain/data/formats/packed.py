"""PackedFaces: the images of a pack written by `facetrain data pack`, read by random access without per-file opens."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from facetrain.config import abs_path
from facetrain.data.formats.pack import INDEX_NAME, META_NAME, PATHS_NAME
from facetrain.data.identity_dataset import IdentityDataset
from facetrain.data.images.image_io import decode_image, fit_image
from facetrain.errors import FacetrainError

__all__ = ["PackedFaces"]


class PackedFaces(IdentityDataset):
    """A pack's images as (uint8 [3, H, W] tensor, label): the same samples FaceFolder gives for the tree.

    Shards are opened lazily in each process (memory maps for `raw`, file descriptors for `jpeg`),
    so the dataset pickles small and every data-loader worker gets its own handles.

    Args:
        root: the pack folder (holds pack.json, index.npy, paths.npy and shard files).
        input_size: (height, width); a `raw` pack of another size is resized (slower; repack instead).
        fit: `resize` or `crop`, as for FaceFolder (used for `jpeg` packs and size changes).
        **selection: identity selection, see `IdentityDataset`.
    """

    def __init__(self, root: str | Path, input_size: Sequence[int] = (112, 96), fit: str = "resize", **selection):
        super().__init__(**selection)
        self.root = abs_path(root)
        if not (self.root / META_NAME).is_file():
            raise FacetrainError(f"{self.root} is not a pack (no {META_NAME}); write one with "
                                 "`facetrain data pack pack.src=TREE pack.out=PACK`")
        self.meta = json.loads((self.root / META_NAME).read_text())
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.fit = fit
        index = np.load(self.root / INDEX_NAME)
        self.bad_at_index = [tuple(b) for b in self.meta.get("bad", [])]
        keep = self._select(index["label"], self.meta["classes"],
                            lambda: [p.decode() for p in np.load(self.root / PATHS_NAME)])
        self.records = index[keep]
        self.paths = np.load(self.root / PATHS_NAME)[keep]
        self._handles: dict[int, object] = {}
        self._pid = -1

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_handles": {}, "_pid": -1}  # memory maps must not travel by pickle

    def _shard(self, k: int):
        if self._pid != os.getpid():  # a forked worker opens its own handles
            self._handles, self._pid = {}, os.getpid()
        if k not in self._handles:
            path = self.root / self.meta["shards"][k]
            if self.meta["format"] == "raw":
                self._handles[k] = np.memmap(path, dtype=np.uint8, mode="r")
            else:
                self._handles[k] = os.open(path, os.O_RDONLY)
        return self._handles[k]

    def _name(self, j: int) -> str:
        return self.paths[j].decode()

    def _encoded(self, j: int) -> bytes | None:
        if self.meta["format"] == "raw":
            return None
        _, shard, offset, length = self.records[j].tolist()
        return os.pread(self._shard(shard), length, offset)

    def _load(self, j: int) -> torch.Tensor:
        if self.meta["format"] != "raw":
            return decode_image(self._encoded(j), self.input_size, self.fit, self._name(j))
        _, shard, offset, length = self.records[j].tolist()
        h, w = self.meta["size"]
        pixels = np.array(self._shard(shard)[offset : offset + length]).reshape(3, h, w)
        return fit_image(torch.from_numpy(pixels), self.input_size, self.fit)
