"""Crop a face from a full image by its bounding box, with a margin, to the network's input size (IJB-A)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from facetrain.errors import FacetrainError

__all__ = ["crop_box", "read_face"]


def crop_box(box: Sequence[float], margin: float, size: Sequence[int]) -> tuple[int, int, int, int]:
    """The crop (left, top, right, bottom) around `box` = (x, y, w, h).

    The box grows by `margin` times its width/height on every side, then its shorter side grows about
    the centre until the crop has the aspect ratio of `size` (H, W), so the face is not stretched.
    """
    x, y, w, h = (float(v) for v in box)
    w2, h2 = w * (1 + 2 * margin), h * (1 + 2 * margin)
    aspect = size[0] / size[1]  # H / W
    if h2 / w2 < aspect:
        h2 = w2 * aspect
    else:
        w2 = h2 / aspect
    cx, cy = x + w / 2, y + h / 2
    return (round(cx - w2 / 2), round(cy - h2 / 2), round(cx + w2 / 2), round(cy + h2 / 2))


def read_face(path: Path, box: Sequence[float], margin: float, size: Sequence[int]) -> torch.Tensor:
    """uint8 [3, H, W]: the crop around `box` (areas outside the image are black), resized (antialiased)."""
    if not (float(box[2]) > 0 and float(box[3]) > 0):
        raise FacetrainError(f"face box {tuple(box)} of {path} has no area; fix the protocol file "
                             "or pass allow_missing=true to drop it")
    try:
        with Image.open(path) as im:
            crop = im.convert("RGB").crop(crop_box(box, margin, size))
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise FacetrainError(f"cannot read image {path} ({err}); remove or replace the file") from None
    image = torch.from_numpy(np.asarray(crop).copy()).permute(2, 0, 1)
    return TF.resize(image, list(size), antialias=True).contiguous()
