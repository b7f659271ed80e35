"""CosFaceLoss: softmax over s * (cos(theta_y) - m) for the target, s * cos(theta_j) otherwise
(large margin cosine loss; Wang et al. 2018, CosFace)."""

from __future__ import annotations

import torch

from facetrain.losses.classifier.margin_softmax import MarginSoftmaxLoss

__all__ = ["CosFaceLoss"]


class CosFaceLoss(MarginSoftmaxLoss):
    """Additive cosine margin. Defaults s = 64, m = 0.35 (the CosFace paper's).

    Args:
        margin: m, subtracted from the target cosine.
        **kwargs: embedding_dim, num_classes, scale and the rest of `MarginSoftmaxLoss`.
    """

    term_name = "cosface"

    def __init__(self, embedding_dim: int, num_classes: int, margin: float = 0.35, scale: float = 64.0, **kwargs):
        super().__init__(embedding_dim, num_classes, scale=scale, **kwargs)
        self.margin = float(margin)

    def target_cosine(self, cos_y: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return cos_y - self.margin
