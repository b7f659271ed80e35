"""Batch augmentation on the device, seeded by iteration so resumed runs repeat it exactly."""

from __future__ import annotations

import torch

__all__ = ["random_hflip"]


def random_hflip(images: torch.Tensor, seed: int, iteration: int, p: float = 0.5) -> torch.Tensor:
    """Mirror each image of a [B, C, H, W] batch with probability p."""
    g = torch.Generator().manual_seed(seed * 7_919 + iteration)
    flip = (torch.rand(images.shape[0], generator=g) < p).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)
