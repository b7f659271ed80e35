"""Class agents: one unit-norm weight vector per class (NormFace §4; the margin losses' normalized weights)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facetrain.sharded.rows import unit_rows

__all__ = ["unit_ball_agents", "squared_agent_distances"]


def unit_ball_agents(num_classes: int, embedding_dim: int) -> nn.Parameter:
    """A [C, D] parameter of Gaussian rows scaled to unit norm (NormFace's `gaussian_unitball` filler), drawn
    block by block of rows: a rank of a sharded classifier draws only its own (`facetrain.sharded.rows`)."""
    return nn.Parameter(unit_rows(num_classes, embedding_dim))


def squared_agent_distances(features: torch.Tensor, agents: torch.Tensor) -> torch.Tensor:
    """||f~_i - W~_j||^2 = 2 - 2 cos(f_i, W_j) for every sample i and class j
    (Wang et al. 2017 (NormFace), the identity under eq. 9).

    Args:
        features: [B, D] features (normalized here).
        agents: [C, D] class agents (normalized here).

    Returns:
        [B, C] squared normalized Euclidean distances, in [0, 4].
    """
    cos = F.normalize(features, dim=1) @ F.normalize(agents, dim=1).T
    return (2.0 - 2.0 * cos).clamp_min(0.0)
