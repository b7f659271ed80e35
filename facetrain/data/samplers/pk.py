"""PKBatchSampler: identity-balanced batches of P identities x K images, resumable (batch i depends only on (seed, i))."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from facetrain.errors import FacetrainError

__all__ = ["PKBatchSampler"]


class PKBatchSampler(Sampler[list[int]]):
    """Yield batches of P = batch_size / K identities with K images each, forever.

    Batch i draws its identities (uniformly, without replacement) and then K images of each (without
    replacement; with replacement for identities with fewer than K images) from a generator seeded by
    (seed, i) alone, so a resumed run sees exactly the batches an uninterrupted one would. Images of an
    identity are consecutive in the batch.

    Args:
        labels: the label of every training image.
        batch_size: images per batch, a multiple of K.
        samples_per_identity: K.
        seed: the run's seed.
        start_iteration: the first batch to yield (a resumed run's iteration).
    """

    def __init__(self, labels: Sequence[int], batch_size: int, samples_per_identity: int, seed: int = 0,
                 start_iteration: int = 0):
        k = int(samples_per_identity)
        if k < 1 or batch_size % k:
            raise FacetrainError(
                f"batch_size={batch_size} is not a multiple of samples_per_identity={k}; "
                "pick a batch size of P x K images")
        labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels)
        self.groups = [g for g in torch.split(order, counts.tolist()) if len(g)]
        self.p, self.k = batch_size // k, k
        if self.p > len(self.groups):
            raise FacetrainError(
                f"batch_size={batch_size} with samples_per_identity={k} needs {self.p} identities per batch "
                f"but the data has {len(self.groups)}; lower batch_size or raise loss.samples_per_identity")
        self.seed, self.start_iteration = int(seed), int(start_iteration)

    def batch(self, iteration: int) -> list[int]:
        """The indices of batch `iteration` (0-based)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + iteration + 7_919)
        out = []
        for c in torch.randperm(len(self.groups), generator=g)[: self.p].tolist():
            members = self.groups[c]
            if len(members) >= self.k:
                pick = torch.randperm(len(members), generator=g)[: self.k]
            else:
                pick = torch.randint(len(members), (self.k,), generator=g)
            out += members[pick].tolist()
        return out

    def __iter__(self) -> Iterator[list[int]]:
        iteration = self.start_iteration
        while True:
            yield self.batch(iteration)
            iteration += 1
