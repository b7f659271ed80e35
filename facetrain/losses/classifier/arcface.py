"""ArcFaceLoss: softmax over s * cos(theta_y + m) for the target, s * cos(theta_j) otherwise
(additive angular margin; Deng et al. 2019, ArcFace)."""

from __future__ import annotations

import math

import torch

from facetrain.losses.classifier.margin_softmax import MarginSoftmaxLoss

__all__ = ["ArcFaceLoss"]


class ArcFaceLoss(MarginSoftmaxLoss):
    """Additive angular margin. Defaults s = 64, m = 0.5 (the ArcFace paper's).

    Where theta + m would pass pi (cos(theta + m) stops decreasing), the target logit falls back to
    cos(theta) - m sin(m), as insightface does, so the margin function stays monotonic.

    Args:
        margin: m, in radians, added to the target angle.
        **kwargs: embedding_dim, num_classes, scale and the rest of `MarginSoftmaxLoss`.
    """

    term_name = "arcface"

    def __init__(self, embedding_dim: int, num_classes: int, margin: float = 0.5, scale: float = 64.0, **kwargs):
        super().__init__(embedding_dim, num_classes, scale=scale, **kwargs)
        self.margin = float(margin)

    def target_cosine(self, cos_y: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        m = self.margin
        # clamp away from sin = 0, where d sqrt / d x is infinite
        sin_y = (1.0 - cos_y * cos_y).clamp_min(1e-12).sqrt()
        shifted = cos_y * math.cos(m) - sin_y * math.sin(m)
        return torch.where(cos_y > math.cos(math.pi - m), shifted, cos_y - m * math.sin(m))
