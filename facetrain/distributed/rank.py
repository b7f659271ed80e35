"""Who this process is in a distributed run: rank 0 alone writes logs, TensorBoard, checkpoints and metrics."""

from __future__ import annotations

import torch.distributed as dist

__all__ = ["is_main_process", "rank", "rank_rows", "world_size"]


def rank() -> int:
    """This process's global rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes training together (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    return rank() == 0


def rank_rows(batch_size: int, rank: int, world_size: int) -> slice:
    """The rows of a global batch of `batch_size` that rank `rank` of `world_size` takes (batch_size / world_size)."""
    share = batch_size // world_size
    return slice(rank * share, (rank + 1) * share)
