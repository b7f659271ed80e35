"""Batch augmentation on the device, seeded by iteration so resumed runs repeat it exactly."""

from __future__ import annotations

import torch

__all__ = ["flip_mask", "random_hflip"]


def flip_mask(seed: int, iteration: int, batch_size: int, p: float = 0.5) -> torch.Tensor:
    """Which images of an iteration's global batch to mirror: drawn on the host from (seed, iteration) alone,
    so it is the same on every device and at every world size."""
    g = torch.Generator().manual_seed(seed * 7_919 + iteration)
    return torch.rand(batch_size, generator=g) < p


def random_hflip(images: torch.Tensor, seed: int, iteration: int, p: float = 0.5, rows: slice | None = None,
                 batch_size: int | None = None) -> torch.Tensor:
    """Mirror each image of a [B, C, H, W] batch with probability p.

    A distributed rank passes the global `batch_size` and its `rows` of it, so each image is mirrored as it
    would be in one process. The mask goes to a GPU from pinned memory without blocking: the host queues
    the copy and the mirroring and moves on (a plain copy would wait for the GPU to finish its queue).
    """
    flip = flip_mask(seed, iteration, batch_size or images.shape[0], p)
    flip = flip[rows] if rows is not None else flip
    if images.device.type == "cuda":
        flip = flip.pin_memory()
    flip = flip.to(images.device, non_blocking=True)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)
