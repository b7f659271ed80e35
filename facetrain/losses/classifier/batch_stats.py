"""Batch statistics of the global batch for the losses that keep a running average of one (AdaFace's norm mean and
std, CurricularFace's mean target cosine), so N ranks update it as one process with the whole batch does.

A rank sees either its own rows (data parallel: the statistic is reduced over the ranks) or the whole gathered
batch (a sharded classifier's block path: every rank already holds it). No gradient flows through either.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from facetrain.distributed.rank import world_size

__all__ = ["global_mean", "global_mean_std"]


@torch.no_grad()
def _sum_over_ranks(x: torch.Tensor, gathered: bool) -> torch.Tensor:
    if gathered or world_size() <= 1:
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x


@torch.no_grad()
def global_mean(values: torch.Tensor, gathered: bool = False) -> torch.Tensor:
    """The mean of `values` over the global batch (0-dim); `gathered`: this rank holds the whole batch."""
    both = _sum_over_ranks(torch.stack([values.sum(), values.new_tensor(float(values.numel()))]), gathered)
    return both[0] / both[1]


@torch.no_grad()
def global_mean_std(values: torch.Tensor, gathered: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, unbiased std) of `values` over the global batch, as `torch.std` of the whole batch gives it
    (two passes: the mean first, then the squared deviations, so no cancellation)."""
    mean = global_mean(values, gathered)
    both = _sum_over_ranks(torch.stack([(values - mean).pow(2).sum(), values.new_tensor(float(values.numel()))]),
                           gathered)
    return mean, (both[0] / (both[1] - 1).clamp_min(1)).sqrt()
