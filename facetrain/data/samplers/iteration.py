"""IterationBatchSampler: an endless, resumable stream of shuffled batches for iteration-based training."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from facetrain.errors import FacetrainError

__all__ = ["IterationBatchSampler"]


class IterationBatchSampler(Sampler[list[int]]):
    """Yield batches of indices forever, starting at `start_iteration`.

    Epoch e is a permutation drawn from (seed, e); its last partial batch is dropped. Batch i
    depends only on (seed, i), so a resumed run sees exactly the batches an uninterrupted one would.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int = 0, start_iteration: int = 0):
        if batch_size > num_samples:
            raise FacetrainError(f"batch_size={batch_size} exceeds the {num_samples} training images; use a smaller "
                                 "batch_size or more data")
        self.num_samples, self.batch_size = num_samples, batch_size
        self.seed, self.start_iteration = seed, start_iteration
        self.batches_per_epoch = num_samples // batch_size

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_samples, generator=g)

    def __iter__(self) -> Iterator[list[int]]:
        epoch, k = divmod(self.start_iteration, self.batches_per_epoch)
        while True:
            perm = self._permutation(epoch)
            for b in range(k, self.batches_per_epoch):
                yield perm[b * self.batch_size : (b + 1) * self.batch_size].tolist()
            epoch, k = epoch + 1, 0
