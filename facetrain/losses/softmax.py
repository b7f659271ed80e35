"""SoftmaxLoss: a linear classifier with cross-entropy (l2-softmax.md eq. 1; with an L2 head, eq. 3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facetrain.losses.base import FaceLoss
from facetrain.losses.output import LossOutput

__all__ = ["SoftmaxLoss"]


class SoftmaxLoss(FaceLoss):
    """Cross-entropy over W^T f + b.

    Args:
        embedding_dim: feature size.
        num_classes: number of training identities.
        bias: whether the classifier has a bias (NormFace prop. 1 argues for none once
            features are normalized).
    """

    term_name = "softmax"

    def __init__(self, embedding_dim: int, num_classes: int, bias: bool = True):
        super().__init__()
        self.classifier = nn.Linear(embedding_dim, num_classes, bias=bias)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        logits = self.classifier(features)
        loss = F.cross_entropy(logits, labels)
        return LossOutput.classified(loss, {self.term_name: loss.detach()}, logits, labels)
