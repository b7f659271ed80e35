"""SoftmaxLoss: a linear classifier with cross-entropy (l2-softmax.md eq. 1; with an L2 head, eq. 3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facetrain.losses.output import LossOutput

__all__ = ["SoftmaxLoss"]


class SoftmaxLoss(nn.Module):
    """Cross-entropy over W^T f + b.

    Args:
        embedding_dim: feature size.
        num_classes: number of training identities.
        bias: whether the classifier has a bias (NormFace prop. 1 argues for none once
            features are normalized).
    """

    def __init__(self, embedding_dim: int, num_classes: int, bias: bool = True):
        super().__init__()
        self.classifier = nn.Linear(embedding_dim, num_classes, bias=bias)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        logits = self.classifier(features)
        loss = F.cross_entropy(logits, labels)
        return LossOutput(total=loss, terms={"softmax": loss.detach()}, logits=logits.detach())

    def scalars(self) -> dict[str, float]:
        return {}
