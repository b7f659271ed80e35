"""Embed evaluation images with a backbone, batched, with the mirrored image's features combined."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF
from tqdm import tqdm

from facetrain.config import check_count
from facetrain.data.images.image_io import check_fit, decode_image, read_aligned, read_image
from facetrain.errors import FacetrainError

__all__ = ["CHANNELS", "MIRROR_MODES", "embed_crops", "embed_encoded", "embed_images"]

MIRROR_MODES = ("sum", "concat", "none")
CHANNELS = (3, 1)


def _grey(image: torch.Tensor) -> torch.Tensor:
    """uint8 [1, H, W] luma; rounded, not truncated, so a grey image keeps its exact values."""
    return TF.rgb_to_grayscale(image.float()).round_().to(torch.uint8)


class _ImageList(Dataset):
    """Whole images, face crops around boxes (with a margin), or faces aligned by 5 landmarks; RGB or grey."""

    def __init__(self, root: Path, paths: Sequence[str], size: Sequence[int],
                 boxes: Sequence[Sequence[float]] | None = None, margin: float = 0.0, fit: str = "resize",
                 channels: int = 3, landmarks: Sequence[np.ndarray] | None = None):
        self.root, self.paths, self.size, self.boxes, self.margin = root, list(paths), size, boxes, margin
        self.fit, self.channels, self.landmarks = fit, channels, landmarks

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.landmarks is not None:
            image = read_aligned(self.root / self.paths[i], self.landmarks[i], self.size)
        else:
            box = None if self.boxes is None else self.boxes[i]
            image = read_image(self.root / self.paths[i], self.size, self.fit, box, self.margin)
        return _grey(image) if self.channels == 1 else image


class _EncodedImages(Dataset):
    """Encoded images held in memory (a `.bin` validation set's JPEG bytes), decoded on demand; RGB or grey."""

    def __init__(self, blobs: Sequence[bytes], names: Sequence[str], size: Sequence[int], fit: str, channels: int):
        self.blobs, self.names, self.size, self.fit, self.channels = blobs, names, size, fit, channels

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int) -> torch.Tensor:
        image = decode_image(self.blobs[i], self.size, self.fit, self.names[i])
        return _grey(image) if self.channels == 1 else image


def _check_settings(mirror: str, fit: str, channels: int) -> None:
    if mirror not in MIRROR_MODES:
        raise FacetrainError(f"mirror={mirror!r} is not one of {', '.join(MIRROR_MODES)}")
    if channels not in CHANNELS:
        raise FacetrainError(f"channels={channels!r} is not supported; use 3 (RGB) or 1 (grey, for models trained "
                             "on 1-channel digits)")
    check_fit(fit)


def _embed(backbone: nn.Module, dataset: Dataset, device: torch.device, mirror: str, batch_size: int,
           num_workers: int, progress: bool) -> np.ndarray:
    check_count("batch_size", batch_size, 1)
    check_count("num_workers", num_workers, 0)
    backbone.eval().to(device)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, pin_memory=device.type == "cuda")
    chunks = []
    try:
        for images in tqdm(loader, desc="embed", disable=not progress, dynamic_ncols=True):
            images = images.to(device, non_blocking=True)
            feats = backbone(images).float()
            if mirror != "none":
                flipped = backbone(images.flip(-1)).float()
                feats = feats + flipped if mirror == "sum" else torch.cat([feats, flipped], dim=1)
            chunks.append(feats.cpu().numpy())
    except FacetrainError as err:  # a loader worker's error arrives with its traceback in the message
        lines = str(err).rstrip().splitlines()
        if len(lines) > 1 and lines[1].startswith("Original Traceback"):
            raise type(err)(lines[-1].split(": ", 1)[-1]) from None
        raise
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)


@torch.no_grad()
def embed_images(backbone: nn.Module, root: Path, paths: Sequence[str], device: torch.device,
                 mirror: str = "sum", batch_size: int = 256, num_workers: int = 0, progress: bool = True,
                 boxes: Sequence[Sequence[float]] | None = None, margin: float = 0.0, fit: str = "resize",
                 channels: int = 3, landmarks: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """float32 [N, D] (or [N, 2D] for `concat`): f(x) + f(flip(x)) by default (NormFace's mirror trick).

    Args:
        backbone: the network (any module with `input_size`), taking uint8 images.
        root: the evaluation root; `paths` are relative to it.
        paths: image files.
        device: where to run.
        mirror: `sum`, `concat` or `none`.
        batch_size, num_workers, progress: loader settings.
        boxes: (x, y, w, h) face boxes, one per path, to crop (IJB-A); None = whole images.
        margin: the crop grows by this fraction of the box on every side.
        fit: how images reach the input size, `resize` or `crop` (as the model's `data.fit` in training).
        channels: 3 (RGB) or 1 (grey, after reading: for models trained on 1-channel digits).
        landmarks: [5, 2] points per path (IJB-B/C): each face is warped onto the 5-point template at the
            input size (instead of `boxes` / `fit`).

    Returns:
        the features, one row per path.
    """
    _check_settings(mirror, fit, channels)
    dataset = _ImageList(root, paths, backbone.input_size, boxes, margin, fit, channels, landmarks)
    return _embed(backbone, dataset, device, mirror, batch_size, num_workers, progress)


@torch.no_grad()
def embed_encoded(backbone: nn.Module, blobs: Sequence[bytes], names: Sequence[str], device: torch.device,
                  mirror: str = "sum", batch_size: int = 256, num_workers: int = 0, progress: bool = True,
                  fit: str = "resize", channels: int = 3) -> np.ndarray:
    """Like `embed_images`, for encoded images held in memory (JPEG/PNG bytes, e.g. a `.bin` validation set).

    Args:
        backbone: the network (any module with `input_size`), taking uint8 images.
        blobs: the encoded images.
        names: one name per image, for the message when one cannot be decoded.
        device, mirror, batch_size, num_workers, progress, fit, channels: as `embed_images`.

    Returns:
        float32 [N, D] (or [N, 2D] for `concat`), one row per image.
    """
    _check_settings(mirror, fit, channels)
    dataset = _EncodedImages(blobs, names, backbone.input_size, fit, channels)
    return _embed(backbone, dataset, device, mirror, batch_size, num_workers, progress)


@torch.no_grad()
def embed_crops(backbone: nn.Module, crops: Sequence[torch.Tensor], device: torch.device, mirror: str = "sum",
                batch_size: int = 256, channels: int = 3) -> np.ndarray:
    """Like `embed_images`, for uint8 RGB crops [3, H, W] already at the input size (`facetrain verify`'s photos)."""
    _check_settings(mirror, "resize", channels)
    images = [_grey(c) if channels == 1 else c for c in crops]
    return _embed(backbone, images, device, mirror, batch_size, 0, False)
