"""Class weights drawn block by block of rows, so a rank of a sharded classifier builds only the rows it holds,
and they are the rows one process draws: the world size changes no weight.

Each block of `BLOCK_ROWS` rows is drawn from its own generator, seeded from (one number drawn from torch's
global generator, the block's index). The global generator thus advances by one draw per matrix on every
rank, whatever rows that rank builds, and the run's seed still decides every weight. While
`building_rows(rank, world_size)` is active (the trainer's build under torchrun with
`shard_classifier=true`), a class-weight matrix holds only that rank's rows (`shard_bounds`); anywhere else
(one process, the evaluation loaders) every row. A rank's draw costs its rows plus one block.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from contextvars import ContextVar

import torch

from facetrain.sharded.shards import shard_bounds

__all__ = ["BLOCK_ROWS", "building_rows", "draw_rows", "uniform_rows", "unit_rows"]

BLOCK_ROWS = 8192  # rows per generator: 16 MiB of fp32 at D = 512
_GOLDEN = 0x9E3779B97F4A7C15  # spreads the blocks' seeds over 64 bits
_PLACE: ContextVar[tuple[int, int] | None] = ContextVar("facetrain_class_rows", default=None)


@contextlib.contextmanager
def building_rows(rank: int, world_size: int) -> Iterator[None]:
    """Class-weight matrices built inside hold only rank `rank`'s block of rows (of `world_size`)."""
    token = _PLACE.set((int(rank), int(world_size)))
    try:
        yield
    finally:
        _PLACE.reset(token)


def draw_rows(num_classes: int, row_shape: tuple[int, ...],
              fill: Callable[[tuple[int, ...], torch.Generator], torch.Tensor]) -> torch.Tensor:
    """The rows of a [num_classes, *row_shape] matrix this process builds (all, or its block; see above).

    `fill(shape, generator)` draws one block's rows (a row may only depend on itself: normalize per row).
    """
    base = int(torch.randint(0, 2**62, (), dtype=torch.int64))  # the same on every rank
    place = _PLACE.get()
    start, stop = (0, num_classes) if place is None else shard_bounds(num_classes, *place)
    out = torch.empty((stop - start, *row_shape))
    for block in range(start // BLOCK_ROWS, math.ceil(stop / BLOCK_ROWS)):
        low, high = block * BLOCK_ROWS, min((block + 1) * BLOCK_ROWS, num_classes)
        generator = torch.Generator().manual_seed((base + block * _GOLDEN) % 2**64)
        rows = fill((high - low, *row_shape), generator)
        a, b = max(low, start), min(high, stop)
        out[a - start:b - start] = rows[a - low:b - low]
    return out


def unit_rows(num_classes: int, dim: int) -> torch.Tensor:
    """Gaussian rows scaled to unit norm (NormFace's `gaussian_unitball` filler)."""
    def fill(shape, generator):
        return torch.nn.functional.normalize(torch.randn(shape, generator=generator), dim=1)

    return draw_rows(num_classes, (dim,), fill)


def uniform_rows(num_classes: int, row_shape: tuple[int, ...], bound: float) -> torch.Tensor:
    """Rows uniform in [-bound, bound] (torch's nn.Linear init: bound = 1 / sqrt(fan_in))."""
    def fill(shape, generator):
        return torch.empty(shape).uniform_(-bound, bound, generator=generator)

    return draw_rows(num_classes, row_shape, fill)
