"""Collectives with the gradients a model-parallel classifier needs (identities in a single process).

Every rank computes the same global loss from its own block of classes. `gather_rows` hands each rank
the whole batch; its backward sums the ranks' partial gradients and returns each rank its own rows.
`sum_over_ranks` adds the ranks' partial sums (the softmax's denominator, the target logit); its
backward is the identity, because each rank's copy of the loss differentiates only its own part.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from facetrain.distributed.rank import rank, world_size

__all__ = ["gather_rows", "max_over_ranks", "rows_to_main", "shared_sum_over_ranks",
           "sum_over_ranks"]


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, grad_scale: float) -> torch.Tensor:
        ctx.rows, ctx.grad_scale = x.shape[0], grad_scale
        parts = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        own = grad[rank() * ctx.rows:(rank() + 1) * ctx.rows]
        return own * ctx.grad_scale, None


class _SumOverRanks(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        total = x.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad


def gather_rows(x: torch.Tensor, grad_scale: float | None = None) -> torch.Tensor:
    """Every rank's `x` (same shape on all) stacked in rank order; the backward returns this rank's rows of
    the gradient summed over the ranks, times `grad_scale` (default: the world size, which undoes
    DistributedDataParallel's averaging of the backbone's gradients, so they come out as one process's).
    """
    if world_size() <= 1:
        return x
    return _GatherRows.apply(x, float(world_size() if grad_scale is None else grad_scale))


def sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """The sum of `x` over the ranks; the gradient reaching this rank's `x` is the loss's own (no sum)."""
    return _SumOverRanks.apply(x) if world_size() > 1 else x


def shared_sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """The sum of `x` over the ranks for a value each rank uses in its own part of a sum (not in the
    shared loss): the gradient reaching `x` adds up every rank's part (torch's all_reduce)."""
    if world_size() <= 1:
        return x
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(x)


@torch.no_grad()
def max_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """The elementwise maximum over the ranks (no gradient: a shift or a comparison)."""
    if world_size() <= 1:
        return x
    x = x.clone()
    dist.all_reduce(x, op=dist.ReduceOp.MAX)
    return x


@torch.no_grad()
def rows_to_main(x: torch.Tensor, bounds: list[tuple[int, int]], chunk_bytes: int) -> torch.Tensor | None:
    """Assemble a row-sharded matrix on rank 0's host: rank r holds rows [bounds[r]) as `x`. Rank 0 returns
    the whole matrix (CPU); every other rank sends its rows, `chunk_bytes` at a time, and returns None.

    No rank holds more than its rows plus one chunk, except rank 0's one host copy of the result; the
    ranks are visited in order with point-to-point sends (NCCL or gloo).
    """
    x = x.detach()
    row_bytes = max(1, x[:1].numel() * x.element_size())
    step = max(1, int(chunk_bytes) // row_bytes)
    me = rank()
    if me != 0:
        for low in range(0, x.shape[0], step):
            dist.send(x[low:low + step].contiguous(), dst=0)
        return None
    full = torch.empty((bounds[-1][1], *x.shape[1:]), dtype=x.dtype)
    full[bounds[0][0]:bounds[0][1]] = x
    buffer = None
    for source, (start, stop) in enumerate(bounds[1:], start=1):
        for low in range(start, stop, step):
            high = min(low + step, stop)
            if x.device.type == "cpu":  # straight into place
                dist.recv(full[low:high], src=source)
                continue
            if buffer is None:
                buffer = x.new_empty((step, *x.shape[1:]))
            dist.recv(buffer[:high - low], src=source)
            full[low:high] = buffer[:high - low]
    return full
