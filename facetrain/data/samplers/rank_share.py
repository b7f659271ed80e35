"""RankShare: each distributed rank's contiguous block of every global batch another batch sampler yields."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from torch.utils.data import Sampler

from facetrain.distributed.rank import rank_rows

__all__ = ["RankShare"]


class RankShare(Sampler[list[int]]):
    """Yield rank `rank`'s block of each batch of `batches` (global batches, the same on every rank).

    Together the ranks see exactly the images one process sees. Blocks are contiguous, so a P x K batch
    splits between identities (when P is a multiple of the world size) and pair losses keep their pairs.

    Args:
        batches: the global batch sampler (e.g. IterationBatchSampler, PKBatchSampler).
        rank: this process's rank.
        world_size: the number of ranks; it divides every batch's size.
    """

    def __init__(self, batches: Iterable[list[int]], rank: int, world_size: int):
        self.batches, self.rank, self.world_size = batches, int(rank), int(world_size)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            yield batch[rank_rows(len(batch), self.rank, self.world_size)]
