"""In-batch pairs for the metric losses: squared normalized distances and positive / negative masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["pair_masks", "squared_normalized_distances"]


def squared_normalized_distances(features: torch.Tensor) -> torch.Tensor:
    """[B, B] ||f~_i - f~_j||^2 = 2 - 2 cos(f_i, f_j), the distance of normface.md eqs. 7-8."""
    f = F.normalize(features.float(), dim=1)
    return (2.0 - 2.0 * f @ f.T).clamp_min(0.0)


def pair_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean [B, B] masks of positive pairs (same label, i != j) and negative pairs (different labels)."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same
