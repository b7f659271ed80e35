"""SoftmaxLoss: a linear classifier with cross-entropy (Ranjan et al. 2017, eq. 1; with an L2 head, eq. 3)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from facetrain.losses.base import FaceLoss, class_matmul
from facetrain.losses.output import LossOutput
from facetrain.sharded.block_softmax import block_forward
from facetrain.sharded.chunked import chunked_rows
from facetrain.sharded.rows import uniform_rows
from facetrain.sharded.shards import ClassShard

__all__ = ["SoftmaxLoss"]


class SoftmaxLoss(FaceLoss):
    """Cross-entropy over W^T f + b.

    Args:
        embedding_dim: feature size.
        num_classes: number of training identities.
        bias: whether the classifier has a bias (NormFace prop. 1 argues for none once
            features are normalized).
        sample_rate: the share of the classes each batch's softmax uses (Partial FC; 1 = all).
    """

    term_name = "softmax"
    class_weight_names = ("classifier.weight", "classifier.bias")

    def __init__(self, embedding_dim: int, num_classes: int, bias: bool = True, sample_rate: float = 1.0):
        super().__init__()
        # torch's Linear init (uniform in +-1/sqrt(D)), drawn block by block of rows: a rank of a sharded
        # classifier draws only its own rows (facetrain.sharded.rows); "meta" allocates nothing
        self.classifier = nn.Linear(embedding_dim, num_classes, bias=bias, device="meta")
        bound = 1 / math.sqrt(embedding_dim)
        self.classifier.weight = nn.Parameter(uniform_rows(num_classes, (embedding_dim,), bound))
        if bias:
            self.classifier.bias = nn.Parameter(uniform_rows(num_classes, (), bound))
        self.classes = ClassShard(num_classes, sample_rate)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        if self.classes.active:
            loss, correct = block_forward(self.classes, self._block_logits, features, labels)
            return LossOutput(total=loss, terms={self.term_name: loss.detach()}, correct=correct)
        logits = class_matmul(features, self.classifier.weight, self.matmul_dtype, self.classifier.bias)
        loss = F.cross_entropy(logits, labels)
        return LossOutput.classified(loss, {self.term_name: loss.detach()}, logits, labels)

    def _block_logits(self, features: torch.Tensor, rows: torch.Tensor | None, target: torch.Tensor):
        def scores(f, weight, bias):
            return class_matmul(f, weight, self.matmul_dtype, bias)

        logits = chunked_rows(scores, features, (self.classifier.weight, self.classifier.bias), rows)
        return logits, logits
