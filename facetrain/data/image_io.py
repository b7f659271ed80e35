"""Decode an image (file or bytes) to a uint8 RGB tensor of a given size: the one decoder training and eval share."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from facetrain.errors import FacetrainError

__all__ = ["FIT_MODES", "ImageReadError", "decode_image", "fit_image", "read_image"]

FIT_MODES = ("resize", "crop")


class ImageReadError(FacetrainError):
    """A file that is not a readable image (empty, truncated, not an image, a directory)."""


def _decode(source, name: str) -> torch.Tensor:
    try:
        with Image.open(source) as im:
            # convert() forces the full decode, so a truncated JPEG fails here, not later in training.
            array = np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        reason = str(err) or type(err).__name__
        raise ImageReadError(f"cannot read image {name} ({reason}); remove or replace the file") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def fit_image(image: torch.Tensor, size: Sequence[int] | None, mode: str = "resize") -> torch.Tensor:
    """Bring a uint8 [C, H, W] image to `size` = (height, width) with torchvision's v2 functional ops.

    `resize` scales both sides (aligned crops: the face already fills the frame as the template
    placed it); `crop` first cuts the largest centred box of the target aspect ratio, then scales
    (unaligned square photos such as CASIA-WebFace's 250x250 originals, without distorting faces).
    """
    if size is None:
        return image.contiguous()
    h, w = int(size[0]), int(size[1])
    if mode == "crop":
        ih, iw = image.shape[-2:]
        scale = min(ih / h, iw / w)
        ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
        if (ch, cw) != (ih, iw):
            image = TF.center_crop(image, [ch, cw])
    elif mode != "resize":
        raise FacetrainError(f"fit={mode!r} is not known; use one of {', '.join(FIT_MODES)}")
    if tuple(image.shape[-2:]) != (h, w):
        image = TF.resize(image, [h, w], antialias=True)
    return image.contiguous()


def read_image(path: Path, size: Sequence[int] | None = None, fit: str = "resize") -> torch.Tensor:
    """uint8 [3, H, W] from a file; grayscale becomes 3-channel; brought to `size` (see `fit_image`).

    Pillow decodes (torchvision.io's decoders are deprecated as of 0.29); resizing happens on the
    uint8 tensor, as late as possible, with torchvision's v2 functional API.

    Raises:
        ImageReadError: the file is missing, empty, truncated or not an image.
    """
    if Path(path).is_dir():
        raise ImageReadError(f"cannot read image {path} (it is a directory); rename or remove it")
    return fit_image(_decode(path, str(path)), size, fit)


def decode_image(data: bytes, size: Sequence[int] | None = None, fit: str = "resize", name: str = "<bytes>"
                 ) -> torch.Tensor:
    """Like `read_image`, from the encoded bytes of a file (a pack's JPEG shard)."""
    return fit_image(_decode(io.BytesIO(data), name), size, fit)
