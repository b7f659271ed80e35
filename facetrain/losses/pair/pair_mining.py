"""In-batch pairs for the metric losses: squared normalized distances, pair masks, the shared set-up."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facetrain.errors import FacetrainError
from facetrain.losses.base import FaceLoss

__all__ = ["InBatchPairLoss", "pair_masks", "squared_normalized_distances"]


class InBatchPairLoss(FaceLoss):
    """What contrastive and triplet share: a margin, a mining mode, and the K of the P x K batches
    they ask the trainer for (`samples_per_identity`)."""

    minings: tuple[str, ...] = ()

    def __init__(self, margin: float, mining: str, samples_per_identity: int):
        super().__init__()
        if mining not in self.minings:
            raise FacetrainError(f"loss.mining={mining!r} is not one of {', '.join(self.minings)}")
        self.margin, self.mining = float(margin), mining
        self.samples_per_identity = int(samples_per_identity)

    @staticmethod
    def distances_and_masks(features: torch.Tensor, labels: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch's [B, B] squared normalized distances and its positive / negative pair masks."""
        return squared_normalized_distances(features), *pair_masks(labels)


def squared_normalized_distances(features: torch.Tensor) -> torch.Tensor:
    """[B, B] ||f~_i - f~_j||^2 = 2 - 2 cos(f_i, f_j), the distance of Wang et al. 2017 (NormFace), eqs. 7-8."""
    f = F.normalize(features.float(), dim=1)
    return (2.0 - 2.0 * f @ f.T).clamp_min(0.0)


def pair_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean [B, B] masks of positive pairs (same label, i != j) and negative pairs (different labels)."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same
