"""The training source an audit reads: the dataset `data=` builds (with its selection), image by image.

Every format hands out its images at their stored size: a folder's file or a pack's JPEG bytes decoded as
they are, a raw pack's crops as packed. The scan pass decodes each image once and keeps what the duplicate
search and the counts need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from facetrain.audit.chunk_cache import chunked_pass
from facetrain.audit.hashing import THUMB_DIM, exact_digest, is_gray, thumbnail
from facetrain.data.formats.folder import FaceFolder
from facetrain.data.identity_dataset import IdentityDataset
from facetrain.data.images.image_io import ImageReadError, decode_image
from facetrain.errors import FacetrainError

__all__ = ["AuditSource", "open_source", "scan"]


@dataclass
class AuditSource:
    """The selected samples of a training set: names (as exclusion lists name them), labels, identity names."""

    dataset: IdentityDataset
    names: list[str]
    labels: np.ndarray
    classes: list[str]
    keys: list[str]  # per sample: its name and what changes when its file does (the caches' keys)

    def image(self, j: int) -> torch.Tensor:
        """uint8 [3, H, W] of sample j at its stored size; ImageReadError when it does not decode."""
        data = self.dataset._encoded(j)
        if data is None:  # a raw pack: the crops are the pixels
            return self.dataset._load(j)
        return decode_image(data, None, "resize", self.dataset._name(j))


def open_source(data: DictConfig) -> AuditSource:
    """The dataset `data` configures; a one-line error when it holds no image."""
    if data.get("generate_if_missing"):
        from facetrain.data.synth.command import ensure_synthetic

        ensure_synthetic(data)
    dataset = instantiate(data.dataset)
    if not isinstance(dataset, IdentityDataset):
        raise FacetrainError(f"data={type(dataset).__name__} is not a face-identity source; audit a folder tree, a "
                             "pack or a RecordIO pack (data=folder|packed|rec|synth)")
    if len(dataset) == 0:
        raise FacetrainError(f"{getattr(dataset, 'root', data.get('root'))} holds no images; point data.root at a "
                             "folder of identity folders or a pack")
    if getattr(dataset, "meta", {}).get("format") == "raw":
        dataset.input_size = tuple(dataset.meta["size"])  # a raw pack's own crop size: no resampling
    names = [dataset._name(j) for j in range(len(dataset))]
    return AuditSource(dataset, names, np.asarray(dataset.labels, np.int64), list(dataset.classes),
                       _keys(dataset, names))


def _stamp(path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def _keys(dataset: IdentityDataset, names: list[str]) -> list[str]:
    """Each sample's name with its file's size and mtime (a folder tree) or its pack's (a pack)."""
    root = dataset.root
    if isinstance(dataset, FaceFolder):
        return [f"{root}/{n}@{_stamp(root / n)}" for n in names]
    pack = _stamp(getattr(dataset, "rec_path", root / "index.npy"))
    return [f"{root}/{n}@{pack}" for n in names]


class _Scan(Dataset):
    """Per sample: readable?, height, width, grey?, pixel digest, thumbnail (for a DataLoader's workers)."""

    def __init__(self, source: AuditSource, index: list[int]):
        self.source, self.index = source, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        try:
            image = self.source.image(self.index[i])
        except ImageReadError as err:
            text = str(err)
            return False, 0, 0, False, b"\0" * 16, np.zeros(THUMB_DIM, np.float32), text[text.find("(") + 1 :
                                                                                           text.rfind(")")]
        h, w = image.shape[-2:]
        return True, h, w, is_gray(image), exact_digest(image), thumbnail(image), ""


def scan(source: AuditSource, cache_dir, workers: int, progress: bool) -> dict[str, np.ndarray]:
    """One decoding pass over the source: `ok`, `height`, `width`, `gray`, `digest` (16 bytes), `thumb`, `reason`."""

    def compute(index: list[int]) -> dict[str, np.ndarray]:
        loader = DataLoader(_Scan(source, index), batch_size=64, num_workers=workers, collate_fn=list)
        rows = [row for batch in loader for row in batch]
        cols = list(zip(*rows, strict=True))
        return {"ok": np.array(cols[0], bool), "height": np.array(cols[1], np.int32),
                "width": np.array(cols[2], np.int32), "gray": np.array(cols[3], bool),
                "digest": np.array(cols[4], dtype="S16"), "thumb": np.stack(cols[5]),
                "reason": np.array(cols[6], dtype=str)}

    return chunked_pass(source.keys, compute, cache_dir, {"pass": "scan", "v": 1},
                        desc="audit: decode + hash", progress=progress)
