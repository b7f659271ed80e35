"""RecFaces: the images of an insightface RecordIO pack (train.rec + train.idx + property), read without MXNet."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from facetrain.data.formats.rec_index import load_rec_index, read_record
from facetrain.data.formats.recordio import RecordError, unpack_payload
from facetrain.data.identity_dataset import IdentityDataset
from facetrain.data.images.image_io import ImageReadError, decode_image

__all__ = ["RecFaces"]

log = logging.getLogger(__name__)


class RecFaces(IdentityDataset):
    """A pack's images as (uint8 [3, H, W] tensor, label), for training with data=rec.

    Each record is found by its `.idx` offset and read with one pread; the file is opened lazily in each
    process, so every data-loader worker has its own handle. A record that cannot be read or decoded is
    skipped and listed in bad_files.tsv (as a broken file of a folder tree is).

    Args:
        root: the pack folder (train.rec, train.idx, optional property and train.lst) or its .rec file.
        input_size: (height, width); insightface's packs hold 112x112 crops, so use input_size=[112,112].
        fit: `resize` or `crop`, as for FaceFolder.
        progress: a progress bar when labels must be read from the image records (packs without a header).
        **selection: identity selection, see `IdentityDataset` (identity names are the zero-padded labels,
            or the folder names of a facetrain-written pack).
    """

    def __init__(self, root: str | Path, input_size: Sequence[int] = (112, 96), fit: str = "resize",
                 progress: bool = True, **selection):
        super().__init__(**selection)
        index = load_rec_index(root, progress=progress)
        self.root = index.files.rec.parent
        self.rec_path = index.files.rec
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.fit = fit
        if index.image_size and self.input_size[0] * index.image_size[1] != self.input_size[1] * index.image_size[0]:
            h, w = index.image_size
            log.warning("%s holds %dx%d crops (its property file) but input_size is %dx%d: they are %s; pass "
                        "input_size=[%d,%d] to train on them as they are", self.rec_path, h, w, *self.input_size,
                        "squeezed" if fit == "resize" else "cropped", h, w)
        self.bad_at_index = list(index.bad)
        keep = self._select(index.labels, index.classes,
                            lambda: [f"{self.rec_path.name}:{k}" for k in index.keys])
        self.keys, self.offsets, self.extents = index.keys[keep], index.offsets[keep], index.extents[keep]
        self._fd, self._pid = -1, -1

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_fd": -1, "_pid": -1}  # a descriptor must not travel to another process

    def _handle(self) -> int:
        if self._pid != os.getpid():  # a forked worker opens its own descriptor
            self._fd, self._pid = os.open(self.rec_path, os.O_RDONLY), os.getpid()
        return self._fd

    def _name(self, j: int) -> str:
        return f"{self.rec_path.name}:{self.keys[j]}"

    def _encoded(self, j: int) -> bytes:
        try:
            payload = read_record(self._handle(), int(self.offsets[j]), int(self.extents[j]))
            return unpack_payload(payload)[1]
        except RecordError as err:
            raise ImageReadError(f"cannot read record {self._name(j)} ({err}); the pack is damaged there") from None

    def _load(self, j: int) -> torch.Tensor:
        return decode_image(self._encoded(j), self.input_size, self.fit, self._name(j))

