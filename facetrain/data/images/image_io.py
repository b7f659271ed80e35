"""Decode an image (file or bytes) to a uint8 RGB tensor of a given size: the one reader training and eval share."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from facetrain.data.images.alignment import warp_face
from facetrain.data.images.face_box import crop_box
from facetrain.data.images.jpeg_decoder import decode_jpeg_fast
from facetrain.errors import FacetrainError

__all__ = ["FIT_MODES", "ImageReadError", "check_fit", "decode_image", "fit_image", "read_aligned", "read_bytes", "read_image"]

FIT_MODES = ("resize", "crop")


class ImageReadError(FacetrainError):
    """A file that is not a readable image (empty, truncated, not an image, a directory)."""


def _decode(source, name: str, landmarks: np.ndarray | None = None, size: Sequence[int] | None = None
            ) -> torch.Tensor:
    try:
        with Image.open(source) as im:
            # convert() forces the full decode, so a truncated JPEG fails here, not later in training.
            array = np.asarray(im.convert("RGB") if landmarks is None else warp_face(im, landmarks, size))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        reason = (str(err) or type(err).__name__).replace(repr(source), name)  # not `<_io.BytesIO object at 0x...>`
        raise ImageReadError(f"cannot read image {name} ({reason}); remove or replace the file") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def _decode_bytes(data: bytes, name: str) -> torch.Tensor:
    """libjpeg-turbo directly for grayscale and colour JPEGs (`jpeg_decoder`), Pillow for everything else."""
    image = decode_jpeg_fast(data)
    return _decode(io.BytesIO(data), name) if image is None else image


def read_bytes(path: Path) -> bytes:
    """A file's bytes; ImageReadError (one line) when it is missing, a directory or unreadable."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except IsADirectoryError:
        raise ImageReadError(f"cannot read image {path} (it is a directory); rename or remove it") from None
    except OSError as err:
        raise ImageReadError(f"cannot read image {path} ({err.strerror or err}); remove or replace the file") from None


def check_fit(mode: str) -> str:
    """`mode` if it is one of FIT_MODES, else a one-line error (raised before any image is read)."""
    if mode not in FIT_MODES:
        raise FacetrainError(f"fit={mode!r} is not known; use one of {', '.join(FIT_MODES)}")
    return mode


def fit_image(image: torch.Tensor, size: Sequence[int] | None, mode: str = "resize") -> torch.Tensor:
    """Bring a uint8 [C, H, W] image to `size` = (height, width) with torchvision's v2 functional ops.

    The memory layout is left as it comes (decoders give channels-last strides): the copy to [C, H, W]
    order happens once, when the batch is stacked, or never for a channels_last model (`collate_images`).

    `resize` scales both sides (aligned crops: the face already fills the frame as the template
    placed it); `crop` first cuts the largest centred box of the target aspect ratio, then scales
    (unaligned square photos such as CASIA-WebFace's 250x250 originals, without distorting faces).
    """
    if size is None:
        return image
    h, w = int(size[0]), int(size[1])
    if check_fit(mode) == "crop":
        ih, iw = image.shape[-2:]
        scale = min(ih / h, iw / w)
        ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
        if (ch, cw) != (ih, iw):
            image = TF.center_crop(image, [ch, cw])
    if tuple(image.shape[-2:]) != (h, w):
        image = TF.resize(image, [h, w], antialias=True)
    return image


def read_image(path: Path, size: Sequence[int] | None = None, fit: str = "resize",
               box: Sequence[float] | None = None, margin: float = 0.0) -> torch.Tensor:
    """uint8 [3, H, W] from a file; grayscale becomes 3-channel; brought to `size` (see `fit_image`).

    With a face `box`, the crop around it (`crop_box`: the margin added, widened to `size`'s aspect
    ratio; parts outside the image black) is cut first. Grayscale and colour JPEGs are decoded by
    libjpeg-turbo directly (`jpeg_decoder`: the same pixels as Pillow, twice as fast), everything
    else by Pillow; cropping and resizing happen on the uint8 tensor, as late as possible, with
    torchvision's v2 functional API.

    Args:
        path: the image file.
        size: (height, width) to bring the image to; None keeps its own size (not with `box`).
        fit: `resize` or `crop` (FIT_MODES), see `fit_image`.
        box: (x, y, w, h) face box to crop around (IJB-A); None = the whole image.
        margin: with `box`, the fraction of the box's width/height added on every side.

    Returns:
        the image.

    Raises:
        ImageReadError: the file is missing, empty, truncated or not an image.
        FacetrainError: the box has no area.
    """
    region = None
    if box is not None:
        if size is None:
            raise FacetrainError("a face box needs size=(height, width): the crop takes its aspect ratio")
        region = crop_box(box, margin, size, str(path))  # checked before decoding: a bad box costs no read
    image = _decode_bytes(read_bytes(path), str(path))
    if region is not None:
        left, top, right, bottom = region
        image = TF.crop(image, top, left, bottom - top, right - left)
    return fit_image(image, size, fit)


def decode_image(data: bytes, size: Sequence[int] | None = None, fit: str = "resize", name: str = "<bytes>"
                 ) -> torch.Tensor:
    """Like `read_image`, from the encoded bytes of a file (a pack's JPEG shard)."""
    return fit_image(_decode_bytes(data, name), size, fit)


def read_aligned(path: Path, landmarks: np.ndarray, size: Sequence[int]) -> torch.Tensor:
    """uint8 [3, H, W]: the face of a file warped so its 5 landmarks land on the template for `size` (IJB-B/C).

    Raises:
        ImageReadError: the file is missing, empty, truncated or not an image.
    """
    if Path(path).is_dir():
        raise ImageReadError(f"cannot read image {path} (it is a directory); rename or remove it")
    return _decode(path, str(path), np.asarray(landmarks, dtype=np.float64).reshape(5, 2), size)
