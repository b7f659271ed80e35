"""TripletLoss on in-batch triplets: max(0, m + d_ap^2 - d_an^2) with semi-hard or hard mining
(Wang et al. 2017 (NormFace), eq. 8)."""

from __future__ import annotations

import torch

from facetrain.losses.output import LossOutput
from facetrain.losses.pair.pair_mining import InBatchPairLoss

__all__ = ["TripletLoss"]

_MINING = ("semihard", "hard", "all")


class TripletLoss(InBatchPairLoss):
    """Triplet loss on L2-normalized features with squared distances (FaceNet's setting; margin 0.2).

    Mining, on the batch's own distances:

    - `semihard` (FaceNet): for every (anchor, positive) pair, the nearest negative farther than the
      positive; when there is none, the farthest negative. The mean is over all (anchor, positive) pairs.
    - `hard` (batch-hard): per anchor, its farthest positive and nearest negative; mean over anchors.
    - `all`: every valid triplet; the mean is over the triplets with a non-zero loss.

    Args:
        embedding_dim: feature size (unused).
        num_classes: number of classes (unused).
        margin: m (alpha in Ge n.d., eq. 7), on squared normalized distances.
        mining: `semihard`, `hard` or `all`.
        samples_per_identity: K of the P x K batches this loss asks the trainer for.
    """

    term_name = "triplet"
    minings = _MINING

    def __init__(self, embedding_dim: int | None = None, num_classes: int | None = None, margin: float = 0.2,
                 mining: str = "semihard", samples_per_identity: int = 4):
        super().__init__(margin, mining, samples_per_identity)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        d, pos, neg = self.distances_and_masks(features, labels)
        zero = features.sum() * 0.0
        if not pos.any() or not neg.any():
            loss = zero
        else:
            loss = getattr(self, f"_{self.mining}")(d, pos, neg)
        return LossOutput(total=loss, terms={self.term_name: loss.detach()})

    def _hard(self, d, pos, neg):
        anchors = pos.any(dim=1) & neg.any(dim=1)
        d_ap = d.masked_fill(~pos, float("-inf")).max(dim=1).values
        d_an = d.masked_fill(~neg, float("inf")).min(dim=1).values
        return (self.margin + d_ap - d_an)[anchors].clamp_min(0.0).mean()

    def _semihard(self, d, pos, neg):
        a, p = pos.nonzero(as_tuple=True)
        d_ap = d[a, p]
        d_an = d[a]  # [pairs, B]: every candidate negative of each pair's anchor
        is_neg = neg[a]
        outside = is_neg & (d_an > d_ap[:, None]).detach()
        nearest_outside = d_an.masked_fill(~outside, float("inf")).min(dim=1).values
        farthest = d_an.masked_fill(~is_neg, float("-inf")).max(dim=1).values
        chosen = torch.where(outside.any(dim=1), nearest_outside, farthest)
        keep = is_neg.any(dim=1)
        return (self.margin + d_ap - chosen)[keep].clamp_min(0.0).mean()

    def _all(self, d, pos, neg):
        triplets = pos[:, :, None] & neg[:, None, :]  # [a, p, n]
        losses = (self.margin + d[:, :, None] - d[:, None, :])[triplets].clamp_min(0.0)
        active = losses > 0
        return losses[active].mean() if active.any() else losses.sum() * 0.0
