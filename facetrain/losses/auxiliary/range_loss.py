"""RangeLoss: alpha * L_intra + beta * L_inter over the classes of a batch (Zhang et al. 2017; Ge n.d., eqs. 4-6)."""

from __future__ import annotations

import torch

from facetrain.losses.base import FaceLoss
from facetrain.losses.output import LossOutput

__all__ = ["RangeLoss"]


class RangeLoss(FaceLoss):
    """Range loss's two terms (eq. 4 adds them to softmax; combine through `CombinedLoss`).

    - intra (eq. 5): for each class in the batch, k / sum_{j<=k} 1/D_j — the harmonic mean of its k
      largest pairwise squared distances — summed over classes.
    - inter (eq. 6): max(margin - D_center, 0), D_center the smallest squared distance between two
      class means in the batch.

    k, alpha (intra) = 1e-4 and beta (inter) = 1e-3 follow the third-party Caffe port (no official code);
    its margin 2e4 does not: m only shifts the hinge's value while it is active, never its gradient, and
    2e4 is far above the squared distances of features whose norms are ~10 (it keeps the hinge on and
    adds ~beta * m = 20 to the logged loss). m = 100 asks the two closest class means of a batch to be
    10 apart. The batch is P x K with K = 2 (32 identities in 64 images): with K = 4 the softmax term
    sees only 16 identities per batch and learns several times slower (docs/losses.md).

    Args:
        embedding_dim: feature size (unused).
        num_classes: number of classes (unused).
        k: how many of the largest intra-class distances enter the harmonic mean.
        alpha, beta: weights of the intra and inter terms.
        margin: m of eq. 6.
        samples_per_identity: K of the P x K batches this loss asks the trainer for.
    """

    def __init__(self, embedding_dim: int | None = None, num_classes: int | None = None, k: int = 2,
                 alpha: float = 1e-4, beta: float = 1e-3, margin: float = 100.0, samples_per_identity: int = 2):
        super().__init__()
        self.k, self.alpha, self.beta, self.margin = int(k), float(alpha), float(beta), float(margin)
        self.samples_per_identity = int(samples_per_identity)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        features = features.float()
        intra, means = features.sum() * 0.0, []
        for c in torch.unique(labels):
            x = features[labels == c]
            means.append(x.mean(dim=0))
            if len(x) < 2:
                continue
            i, j = torch.triu_indices(len(x), len(x), offset=1, device=x.device)
            dist = (x[i] - x[j]).pow(2).sum(dim=1)
            top = dist.topk(min(self.k, len(dist))).values.clamp_min(1e-12)
            intra = intra + len(top) / (1.0 / top).sum()
        inter = features.sum() * 0.0
        if len(means) > 1:
            centers = torch.stack(means)
            i, j = torch.triu_indices(len(centers), len(centers), offset=1, device=centers.device)
            closest = (centers[i] - centers[j]).pow(2).sum(dim=1).min()
            inter = (self.margin - closest).clamp_min(0.0)
        total = self.alpha * intra + self.beta * inter
        return LossOutput(total=total, terms={"intra": intra.detach(), "inter": inter.detach()})
