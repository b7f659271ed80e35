"""CenterLoss: sum_i ||x_i - c_{y_i}||^2 / (2M), centers moved by the paper's rule (Wen et al. 2016; Ge n.d., eq. 2)."""

from __future__ import annotations

import torch

from facetrain.distributed.collectives import sum_over_ranks
from facetrain.losses.base import FaceLoss
from facetrain.losses.output import LossOutput

__all__ = ["CenterLoss"]


class CenterLoss(FaceLoss):
    """The intra-class term of center loss; combine it with softmax (eq. 3) through `CombinedLoss`.

    The value is averaged over the batch (M), as caffe-face's layer does, so the paper's
    lambda = 0.003 keeps its meaning next to a batch-averaged softmax. The centers are not trained
    by the optimizer: after each training forward they move by the paper's update,
    c_j <- c_j - alpha * sum_{i: y_i = j} (c_j - x_i) / (1 + n_j), which does not depend on the loss
    weight. (caffe-face instead hands that step to its solver, with lr x lr_mult, momentum and decay.)
    Under torchrun the sums and counts of the update are added over the ranks, so every rank moves the
    centers by the global batch's update, the one a single process makes.

    Args:
        embedding_dim: feature size.
        num_classes: number of training identities.
        alpha: the center learning rate of the update (the paper's 0.5).
    """

    term_name = "center"

    def __init__(self, embedding_dim: int, num_classes: int, alpha: float = 0.5):
        super().__init__()
        self.alpha = float(alpha)
        self.register_buffer("centers", torch.zeros(num_classes, embedding_dim))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        features = features.float()
        centers = self.centers[labels]  # a copy, so the update below leaves the graph intact
        loss = (features - centers).pow(2).sum() / (2 * features.shape[0])
        if self.training:
            self._update(features.detach(), labels)
        return LossOutput(total=loss, terms={self.term_name: loss.detach()})

    @torch.no_grad()
    def _update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        delta = torch.zeros_like(self.centers).index_add_(0, labels, self.centers[labels] - features)
        counts = torch.bincount(labels, minlength=self.centers.shape[0]).to(features.dtype)
        delta, counts = sum_over_ranks(delta), sum_over_ranks(counts)
        self.centers -= self.alpha * delta / (1.0 + counts)[:, None]
