"""Decode an image file to a uint8 RGB tensor of a given size (the one decoder training and eval share)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from facetrain.errors import FacetrainError

__all__ = ["read_image"]


def read_image(path: Path, size: Sequence[int] | None = None) -> torch.Tensor:
    """uint8 [3, H, W]; grayscale becomes 3-channel; resized (antialiased) when `size` differs.

    Pillow decodes (torchvision.io's decoders are deprecated as of 0.29); resizing happens on the
    uint8 tensor with torchvision's v2 functional API.
    """
    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise FacetrainError(f"cannot read image {path} ({err}); remove or replace the file") from None
    image = torch.from_numpy(array.copy()).permute(2, 0, 1)
    if size is not None and tuple(image.shape[-2:]) != tuple(size):
        image = TF.resize(image, list(size), antialias=True)
    return image.contiguous()
