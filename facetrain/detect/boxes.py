"""MTCNN's box arithmetic (Zhang et al. 2016, Sec. 2.1-2.2): the image pyramid, box regression, squaring, crops, NMS.

Boxes are (x1, y1, x2, y2) in pixel-edge coordinates: pixel (i, j) covers [j, j+1) x [i, i+1), so a
box's width is x2 - x1.
"""

from __future__ import annotations

import math

import torch
from torchvision.ops import box_area, roi_align

__all__ = ["crops", "nms_min", "pyramid", "regress", "scaled_size", "square"]


def pyramid(height: int, width: int, min_face: float, factor: float) -> list[float]:
    """The scales at which P-Net's 12-pixel window sees faces of min_face pixels and larger.

    The first scale maps a min_face face onto 12 pixels; each next one is `factor` times smaller,
    down to the scale where the shorter side is 12 pixels.
    """
    scales, scale = [], 12.0 / min_face
    while min(height, width) * scale >= 12:
        scales.append(scale)
        scale *= factor
    return scales


def regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Move each edge by its offset times the box's width (x) or height (y)."""
    wh = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    return boxes + offsets * wh


def square(boxes: torch.Tensor) -> torch.Tensor:
    """The square of side max(width, height) with the same centre (the next network's input is square)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]).amax(1, keepdim=True) / 2
    return torch.cat([centre - half, centre + half], 1)


def crops(images: torch.Tensor, boxes: torch.Tensor, image_index: torch.Tensor, size: int) -> torch.Tensor:
    """[K, C, size, size]: each box's region of its image, resampled by averaging (zeros outside the image).

    roi_align with an adaptive number of samples per output pixel averages the box's pixels, as the
    area resampling of the original implementation does, for all boxes at once.
    """
    rois = torch.cat([image_index.to(boxes.dtype)[:, None], boxes], 1)
    return roi_align(images, rois, (size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def nms_min(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS where overlap is intersection over the smaller box's area, within each group.

    The cascade's last stage uses it (as the authors' code does) so a box inside a larger one with a
    higher score is dropped even when their IoU is small. Indices kept, highest score first.
    """
    order = scores.argsort(descending=True, stable=True)
    b, g = boxes[order], groups[order]
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    area = box_area(b)
    overlap = inter / torch.minimum(area[:, None], area[None, :]).clamp(min=1e-12)
    suppress = ((overlap > threshold) & (g[:, None] == g[None, :])).cpu()
    keep = torch.ones(len(b), dtype=torch.bool)
    for i in range(len(b)):  # few boxes reach the last stage
        if keep[i]:
            keep[i + 1 :] &= ~suppress[i, i + 1 :]
    return order[keep.to(order.device)]


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The pyramid level's (height, width): rounded up, as the authors' code does."""
    return math.ceil(height * scale), math.ceil(width * scale)
