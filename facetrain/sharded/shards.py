"""ClassShard: which classes a rank's classifier holds and, with class sampling, which of them a batch uses.

A model-parallel classifier splits the class weights into contiguous blocks, one per rank (the first
C mod N ranks hold one row more). Class sampling (Partial FC) keeps, for each batch, the positive classes
of the global batch plus a random subset of the others, `sample_rate` x C in all; the subset is drawn
from (seed, iteration) over all C classes, the same on every rank, so it does not depend on the world size.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from facetrain.errors import FacetrainError

__all__ = ["ClassShard", "shard_bounds"]


def shard_bounds(num_classes: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, stop) of the classes rank `rank` of `world_size` holds (contiguous; uneven C allowed)."""
    base, extra = divmod(int(num_classes), int(world_size))
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class ClassShard(nn.Module):
    """The class block of one loss on this rank (no parameters: its owner's class weights are sliced).

    Args:
        num_classes: C, all classes.
        sample_rate: the share of the C classes each batch's softmax uses (1 = all, no sampling).
    """

    def __init__(self, num_classes: int, sample_rate: float = 1.0):
        super().__init__()
        rate = float(sample_rate)
        if not 0 < rate <= 1:
            raise FacetrainError(f"loss.sample_rate={sample_rate} must be in (0, 1]: the share of the classes "
                                 "each batch's softmax uses (1 = all)")
        self.num_classes, self.sample_rate = int(num_classes), rate
        self.start, self.stop, self.world_size = 0, int(num_classes), 1
        self.seed, self.iteration = 0, 0  # the trainer sets them (run seed; the iteration in progress)

    @property
    def active(self) -> bool:
        """True when the loss must take the block path: sharded over ranks, or sampling classes."""
        return self.world_size > 1 or self.sample_rate < 1

    @property
    def size(self) -> int:
        return self.stop - self.start

    def place(self, owner: nn.Module, names: tuple[str, ...], rank: int, world_size: int) -> None:
        """Keep only this rank's rows of `owner`'s class-weight parameters `names` (dotted, row = class):
        cut out of the full matrices, or as they are when the loss was built with only them
        (`facetrain.sharded.rows.building_rows`, what the trainer does).

        Each kept parameter is marked with `class_shard` (this object), so the trainer finds the sharded
        parameters for DistributedDataParallel, gradient clipping and checkpoints. The owner's other
        parameters stay replicated; their gradient here is only this block's part of it, so it is scaled
        by the world size, and DistributedDataParallel's average over the ranks makes it the sum.
        """
        self.start, self.stop = shard_bounds(self.num_classes, rank, world_size)
        self.world_size = int(world_size)
        for name in names:
            parent_name, _, leaf = name.rpartition(".")
            parent = owner.get_submodule(parent_name) if parent_name else owner
            full = getattr(parent, leaf)
            if full is None:  # e.g. a classifier built without a bias
                continue
            held = full.detach()
            if held.shape[0] != self.size:  # built whole (not under `building_rows`): keep this rank's block
                held = held[self.start:self.stop].clone()
            rows = nn.Parameter(held, requires_grad=full.requires_grad)
            rows.class_shard = self
            setattr(parent, leaf, rows)
        if world_size > 1:  # a replicated parameter (a learned scale) gets this block's part of its gradient
            for param in owner.parameters():
                if param.requires_grad and not hasattr(param, "class_shard"):
                    param.register_hook(lambda grad: grad * self.world_size)  # DDP's mean becomes the sum

    def sampled_classes(self, labels: torch.Tensor) -> torch.Tensor:
        """The sorted global class ids this iteration's softmax uses: every label of the (global) batch, and
        random others up to ceil(sample_rate x C), drawn from (seed, iteration) alone."""
        g = torch.Generator(device=labels.device).manual_seed(self.seed * 1_000_003 + self.iteration)
        score = torch.rand(self.num_classes, generator=g, device=labels.device)
        score[labels] = 2.0  # positives always rank first
        positives = int(torch.unique(labels).numel())
        keep = max(positives, math.ceil(self.sample_rate * self.num_classes))
        return score.topk(keep, sorted=False).indices.sort().values

    def select(self, labels: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(rows, target) for a global batch's `labels`: the rows of this rank's block the softmax uses
        (None: all of them) and each sample's class as a column of those rows, -1 where it is elsewhere."""
        local = labels - self.start
        inside = (local >= 0) & (local < self.size)
        if self.sample_rate >= 1:
            return None, torch.where(inside, local, -1)
        chosen = self.sampled_classes(labels)
        rows = chosen[(chosen >= self.start) & (chosen < self.stop)] - self.start
        column = torch.searchsorted(rows, local).clamp_max(max(len(rows) - 1, 0))
        found = inside & (rows[column] == local) if len(rows) else torch.zeros_like(inside)
        return rows, torch.where(found, column, -1)
