"""Spatial-size arithmetic for backbones whose FC layer reads a flattened map sized by the input."""

from __future__ import annotations

import math
from collections.abc import Sequence

from facetrain.errors import FacetrainError

__all__ = ["as_size", "conv_out", "pool_out"]

Size = tuple[int, int]


def as_size(input_size: Sequence[int]) -> Size:
    """(height, width) as two positive ints, or a one-line error naming the fix."""
    size = tuple(int(v) for v in input_size)
    if len(size) != 2 or min(size) <= 0:
        raise FacetrainError(f"input_size={list(input_size)} must be [height, width] in pixels, e.g. [112, 96]")
    return size  # type: ignore[return-value]


def conv_out(size: Size, kernel: int, stride: int, padding: int) -> Size:
    """Output (H, W) of a convolution (floor rounding, as both Caffe and PyTorch do)."""
    h, w = ((n + 2 * padding - kernel) // stride + 1 for n in size)
    if h <= 0 or w <= 0:
        raise FacetrainError(f"the input is too small for this backbone (a layer's output would be {h}x{w}); "
                             "use a larger input_size")
    return h, w


def pool_out(size: Size, kernel: int, stride: int) -> Size:
    """Output (H, W) of an unpadded max-pool in Caffe's ceil mode (PyTorch's ceil_mode=True)."""
    h, w = (math.ceil((n - kernel) / stride) + 1 for n in size)
    if h <= 0 or w <= 0:
        raise FacetrainError("the input is too small for this backbone; use a larger input_size")
    return h, w
