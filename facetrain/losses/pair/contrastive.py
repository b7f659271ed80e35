"""ContrastiveLoss on in-batch pairs: d^2 for positives, max(0, m - d^2) for negatives
(Wang et al. 2017 (NormFace), eq. 7)."""

from __future__ import annotations

import torch

from facetrain.losses.output import LossOutput
from facetrain.losses.pair.pair_mining import InBatchPairLoss

__all__ = ["ContrastiveLoss"]

_MINING = ("all", "hard", "semihard")


class ContrastiveLoss(InBatchPairLoss):
    """Contrastive loss on L2-normalized features with squared distances.

    The positive and negative parts are each averaged over their selected pairs and then added, so
    the many negatives of a P x K batch do not drown the few positives.

    Args:
        embedding_dim: feature size (unused).
        num_classes: number of classes (unused).
        margin: m, on the squared normalized distance (in [0, 4]).
        mining: `all` pairs; `hard`: for each anchor its farthest positive and nearest negative;
            `semihard`: all positives, and for each anchor the negatives farther than its farthest
            positive yet inside the margin (they still cost something but are not harder than the
            anchor's own identity — FaceNet's semi-hard idea for pairs; anchors without a positive
            contribute no negative).
        samples_per_identity: K of the P x K batches this loss asks the trainer for.
    """

    term_name = "contrastive"
    minings = _MINING

    def __init__(self, embedding_dim: int | None = None, num_classes: int | None = None, margin: float = 1.0,
                 mining: str = "all", samples_per_identity: int = 4):
        super().__init__(margin, mining, samples_per_identity)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        d, pos, neg = self.distances_and_masks(features, labels)
        if self.mining == "hard":
            pos, neg = _hardest(d, pos, largest=True), _hardest(d, neg, largest=False)
        elif self.mining == "semihard":
            farthest_pos = d.detach().masked_fill(~pos, float("-inf")).amax(dim=1, keepdim=True)
            neg = neg & (d.detach() > farthest_pos.masked_fill(~pos.any(1, keepdim=True), float("inf"))) & (
                d.detach() < self.margin)
        zero = features.sum() * 0.0  # keeps the graph when a batch has no pair of a kind
        pos_term = d[pos].mean() if pos.any() else zero
        neg_term = (self.margin - d[neg]).clamp_min(0.0).mean() if neg.any() else zero
        loss = pos_term + neg_term
        return LossOutput(total=loss, terms={self.term_name: loss.detach()})


def _hardest(d: torch.Tensor, mask: torch.Tensor, largest: bool) -> torch.Tensor:
    """Keep, per row (anchor) that has any pair in `mask`, only its extreme-distance pair."""
    fill = float("-inf") if largest else float("inf")
    masked = d.detach().masked_fill(~mask, fill)
    idx = masked.argmax(dim=1) if largest else masked.argmin(dim=1)
    keep = torch.zeros_like(mask)
    keep[torch.arange(len(d), device=d.device), idx] = True
    return keep & mask
