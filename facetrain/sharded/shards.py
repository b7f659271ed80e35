"""ClassShard: which classes a rank's classifier holds and, with class sampling, which of them a batch uses.

A model-parallel classifier splits the class weights into contiguous blocks, one per rank (the first
C mod N ranks hold one row more). Class sampling (Partial FC) keeps, for each batch, the positive classes
of the global batch plus random others. Each rank draws only for its own classes, as insightface's
partial_fc_v2 does, yet the set does not depend on the world size: the classes are cut into fixed sampling
blocks of `sample_block` classes (not the ranks' blocks), each block draws from its own generator seeded
by (seed, iteration, block) and keeps its positives plus random others up to ceil(sample_rate x its size).
A rank draws for the sampling blocks its classes touch, so every rank sees a block's draw whole.
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

    sample_block = 1 << 16  # classes per sampling block: a rank draws O(C / N + 2 x this) numbers per step

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

    def _kept(self, labels: torch.Tensor, first: int, last: int) -> torch.Tensor:
        """Which classes of sampling blocks first..last (inclusive) this iteration keeps, as a bool mask over
        classes [first x S, min((last + 1) x S, C)): in each block its positives (labels of the global batch)
        and the highest random scores up to ceil(sample_rate x block size). No host sync."""
        size, device = self._block_size, labels.device
        lo, hi = first * size, min((last + 1) * size, self.num_classes)
        scores = torch.full(((last - first + 1) * size,), -1.0, device=device)  # padding ranks last
        for block in range(first, last + 1):
            g = torch.Generator(device=device).manual_seed(
                ((self.seed * 1_000_003 + self.iteration) * 1_000_033 + block) % (1 << 63))
            start = (block - first) * size
            scores[start:start + min(size, self.num_classes - block * size)] = torch.rand(
                min(size, self.num_classes - block * size), generator=g, device=device)
        local = labels - lo
        inside = (local >= 0) & (local < hi - lo)
        positive = torch.zeros(scores.numel() + 1, dtype=torch.bool, device=device)
        positive[torch.where(inside, local, scores.numel())] = True
        positive = positive[:-1].view(-1, size)
        scores = torch.where(positive, 2.0, scores.view(-1, size))  # positives rank first
        quota = torch.full((last - first + 1,), math.ceil(self.sample_rate * size), device=device)
        quota[-1] = math.ceil(self.sample_rate * min(size, self.num_classes - last * size))  # no host copy
        keep = torch.maximum(quota, positive.sum(dim=1))
        order = scores.argsort(dim=1, descending=True, stable=True)
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(size, device=device).expand_as(order))
        return (rank < keep[:, None]).view(-1)[:hi - lo]

    @property
    def _block_size(self) -> int:
        return max(1, min(self.sample_block, self.num_classes))

    def sampled_classes(self, labels: torch.Tensor) -> torch.Tensor:
        """The sorted global class ids this iteration's softmax uses, over all C (what the ranks' `select`
        together use): every label of the global batch and random others, block by block."""
        last = (self.num_classes - 1) // self._block_size
        return self._kept(labels, 0, last).nonzero().squeeze(1)

    def select(self, labels: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(rows, target) for a global batch's `labels`: the rows of this rank's block the softmax uses
        (None: all of them) and each sample's class as a column of those rows, -1 where it is elsewhere.

        With class sampling, listing the kept rows (`nonzero`) is the draw's one host sync."""
        local = labels - self.start
        inside = (local >= 0) & (local < self.size)
        if self.sample_rate >= 1:
            return None, torch.where(inside, local, -1)
        if self.size == 0:
            return torch.zeros(0, dtype=torch.long, device=labels.device), torch.full_like(labels, -1)
        first, last = self.start // self._block_size, (self.stop - 1) // self._block_size
        offset = self.start - first * self._block_size
        own = self._kept(labels, first, last)[offset:offset + self.size]
        column = own.cumsum(0) - 1  # a kept row's column among the kept rows; every label is kept
        return own.nonzero().squeeze(1), torch.where(inside, column[local.clamp(0, self.size - 1)], -1)
