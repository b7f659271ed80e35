"""The MTCNN cascade (Zhang et al. 2016): P-Net proposals over an image pyramid, refined by R-Net, then O-Net's
boxes and five landmarks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms

from facetrain.detect.boxes import crops, nms_min, pyramid, regress, scaled_size, square
from facetrain.detect.weights import load_nets

__all__ = ["MTCNN"]

_STRIDE, _CELL = 2, 12  # P-Net's output cell: a 12x12 window every 2 pixels


def _normalize(x: torch.Tensor) -> torch.Tensor:
    """Pixel values 0..255 -> about [-1, 1], as the networks were trained."""
    return (x - 127.5) * 0.0078125


class MTCNN(nn.Module):
    """Faces, their scores and five landmarks in a batch of equal-size RGB images.

    Args:
        min_face: the smallest face side (pixels) searched for.
        thresholds: the face-probability thresholds of P-, R- and O-Net.
        factor: the ratio between neighbouring pyramid scales.
    """

    def __init__(self, min_face: float = 20.0, thresholds: Sequence[float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709):
        super().__init__()
        self.pnet, self.rnet, self.onet = load_nets()
        self.min_face, self.thresholds, self.factor = float(min_face), tuple(float(t) for t in thresholds), factor

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Detect faces in `images` [N, 3, H, W] (RGB, values 0..255, any float dtype, on the nets' device).

        Returns:
            boxes [K, 4] (x1, y1, x2, y2 in pixel-edge coordinates), scores [K], landmarks [K, 5, 2]
            (x, y with pixel centres at integers: left eye, right eye, nose tip, left and right mouth
            corners as seen in the image), image index [K]; within an image, highest score first.
        """
        images = images.float()
        boxes, index = self._propose(images)
        boxes, index = self._refine(images, boxes, index)
        return self._output(images, boxes, index)

    def _propose(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 1: P-Net at every pyramid scale; NMS within each scale, then across scales."""
        h, w = images.shape[-2:]
        found = []
        for scale in pyramid(h, w, self.min_face, self.factor):
            hs, ws = scaled_size(h, w, scale)
            offsets, prob = self.pnet(_normalize(F.interpolate(images, size=(hs, ws), mode="area")))
            n, i, j = torch.nonzero(prob >= self.thresholds[0], as_tuple=True)
            cell = torch.stack([j, i, j, i], 1).to(images.dtype) * _STRIDE
            cell[:, 2:] += _CELL
            boxes = cell / torch.tensor([ws / w, hs / h, ws / w, hs / h], device=images.device)
            score, offsets = prob[n, i, j], offsets.permute(0, 2, 3, 1)[n, i, j]
            keep = batched_nms(boxes, score, n, 0.5)
            found.append((boxes[keep], score[keep], offsets[keep], n[keep]))
        if not found:
            return images.new_zeros(0, 4), torch.zeros(0, dtype=torch.long, device=images.device)
        boxes, score, offsets, n = (torch.cat(v) for v in zip(*found, strict=True))
        keep = batched_nms(boxes, score, n, 0.7)
        return square(regress(boxes[keep], offsets[keep])), n[keep]

    def _refine(self, images: torch.Tensor, boxes: torch.Tensor, index: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 2: R-Net on 24x24 crops rejects most proposals and regresses the rest."""
        if len(boxes) == 0:
            return boxes, index
        offsets, score = self.rnet(_normalize(crops(images, boxes, index, 24)))
        ok = score > self.thresholds[1]
        boxes, score, offsets, index = boxes[ok], score[ok], offsets[ok], index[ok]
        keep = batched_nms(boxes, score, index, 0.7)
        return square(regress(boxes[keep], offsets[keep])), index[keep]

    def _output(self, images: torch.Tensor, boxes: torch.Tensor, index: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stage 3: O-Net on 48x48 crops gives the final score, box and landmarks."""
        if len(boxes) == 0:
            return boxes, boxes.new_zeros(0), boxes.new_zeros(0, 5, 2), index
        offsets, points, score = self.onet(_normalize(crops(images, boxes, index, 48)))
        ok = score > self.thresholds[2]
        boxes, score, offsets, points, index = boxes[ok], score[ok], offsets[ok], points[ok], index[ok]
        # landmarks are fractions of the box O-Net saw (before its own regression); -0.5 -> pixel centres
        size = boxes[:, 2:] - boxes[:, :2]
        landmarks = boxes[:, None, :2] + points.view(-1, 2, 5).transpose(1, 2) * size[:, None, :] - 0.5
        boxes = regress(boxes, offsets)
        keep = nms_min(boxes, score, index, 0.7)
        keep = keep[torch.argsort(index[keep], stable=True)]  # grouped by image, best first within each
        return boxes[keep], score[keep], landmarks[keep], index[keep]
