"""libjpeg-turbo called directly on a JPEG's bytes: the fast path of `image_io`, about twice Pillow's rate.

Pillow decodes with the same libjpeg-turbo, but for a 112x112 face crop its file parsing and the copies
on the way to a tensor cost as much again as the decode itself. TorchCodec's `decode_jpeg` (the decoder
torchvision.io points to since it deprecated its own in 0.29) is used where installed, else
torchvision.io's; both give Pillow's pixels (default IDCT and fancy chroma upsampling, no EXIF
rotation). Whatever this path does not take (not a JPEG, CMYK, a decoder error) goes to Pillow, which
then gives the authoritative result or error.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import torch

__all__ = ["JPEG_BACKEND", "decode_jpeg_fast", "is_jpeg", "jpeg_components"]

log = logging.getLogger(__name__)

_SOI = b"\xff\xd8\xff"
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # frame headers (not DHT, JPG, DAC)


def _torchcodec() -> Callable[[torch.Tensor], torch.Tensor]:
    from torchcodec.decoders import decode_jpeg

    return lambda data: decode_jpeg(data, mode="RGB")


def _torchvision() -> Callable[[torch.Tensor], torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg

    # the deprecation is the reason TorchCodec comes first; the decoder works and is libjpeg-turbo
    warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                            category=DeprecationWarning)
    return lambda data: decode_jpeg(data, mode=ImageReadMode.RGB)


def _pick() -> tuple[str, Callable[[torch.Tensor], torch.Tensor] | None]:
    for name, make in (("torchcodec", _torchcodec), ("torchvision", _torchvision)):
        try:
            return name, make()
        except Exception as err:  # noqa: BLE001 - an absent or broken optional decoder means: try the next
            log.debug("JPEG decoder %s unavailable: %s", name, err)
    return "pillow", None


JPEG_BACKEND, _DECODE = _pick()


def is_jpeg(data: bytes | bytearray | memoryview) -> bool:
    """True when the bytes start with a JPEG's start-of-image marker."""
    return bytes(data[:3]) == _SOI


def jpeg_components(data: bytes) -> int:
    """The component count of a JPEG's frame header (1 gray, 3 colour, 4 CMYK/YCCK); 0 when none is found."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return 0
        marker = data[pos + 1]
        if marker == 0xFF:  # a fill byte before the marker
            pos += 1
            continue
        if marker in _SOF:
            return data[pos + 9] if pos + 10 <= len(data) else 0
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return 0


def decode_jpeg_fast(data: bytes) -> torch.Tensor | None:
    """uint8 [3, H, W] of a grayscale or colour JPEG; None where Pillow must decode (see the module).

    libjpeg-turbo writes H x W x 3 pixels: the result is a [3, H, W] view of them (channels-last strides),
    not copied to [3, H, W] order; the loaders' collate makes the batch's layout (`collate_images`).
    Gray becomes RGB inside libjpeg-turbo (the plane repeated, as Pillow's L -> RGB).
    """
    if _DECODE is None or not is_jpeg(data) or jpeg_components(data) not in (1, 3):
        return None  # CMYK / YCCK: Pillow's conversion, not the wrappers' own
    try:
        return _DECODE(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    except RuntimeError:  # truncated, corrupt, or a kind libjpeg-turbo's wrapper refuses: Pillow decides
        return None
