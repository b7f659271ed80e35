"""Batch augmentation on the device, seeded by iteration so resumed runs repeat it exactly."""

from __future__ import annotations

import torch

__all__ = ["random_hflip"]


def random_hflip(images: torch.Tensor, seed: int, iteration: int, p: float = 0.5, rows: slice | None = None,
                 batch_size: int | None = None) -> torch.Tensor:
    """Mirror each image of a [B, C, H, W] batch with probability p.

    A distributed rank passes the global `batch_size` and its `rows` of it, so each image is mirrored as it
    would be in one process.
    """
    g = torch.Generator().manual_seed(seed * 7_919 + iteration)
    flip = torch.rand(batch_size or images.shape[0], generator=g) < p
    flip = (flip[rows] if rows is not None else flip).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)
