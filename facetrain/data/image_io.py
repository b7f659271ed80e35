"""Decode an image file to a uint8 RGB tensor of a given size (the one decoder training and eval share)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as TF

from facetrain.errors import FacetrainError

__all__ = ["read_image"]


def read_image(path: Path, size: Sequence[int] | None = None) -> torch.Tensor:
    """uint8 [3, H, W]; grayscale becomes 3-channel; resized (antialiased) when `size` differs."""
    try:
        image = decode_image(str(path), mode=ImageReadMode.RGB)
    except (RuntimeError, OSError, ValueError) as err:
        raise FacetrainError(f"cannot read image {path} ({err}); remove or replace the file") from None
    if size is not None and tuple(image.shape[-2:]) != tuple(size):
        image = TF.resize(image, list(size), antialias=True)
    return image
