"""IdentityHead: no feature normalization (the plain softmax baseline)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["IdentityHead"]


class IdentityHead(nn.Module):
    """Pass embeddings through unchanged. `num_classes` is accepted so every head builds alike."""

    def __init__(self, num_classes: int | None = None):
        super().__init__()

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return embeddings

    def scalars(self) -> dict[str, float]:
        return {}
