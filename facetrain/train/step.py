"""train_step: one iteration — forward, loss, backward, precision, clipping, optimizer and LR schedule."""

from __future__ import annotations

import contextlib
import math

import torch

from facetrain.data.images.augment import random_hflip
from facetrain.distributed.rank import rank, rank_rows, world_size
from facetrain.sharded.fused import discard_deferred, step_deferred
from facetrain.sharded.state import clip_global_norm, global_grad_norm
from facetrain.train.progress import batch_stats
from facetrain.train.speed import to_memory_format
from facetrain.train.state import TrainState

__all__ = ["train_step"]


def _optimizer_step(state: TrainState) -> torch.Tensor | None:
    """Unscale, clip the `clip_grad_scope` parameters to `clip_grad_norm` (if set), and step unless some
    gradient is not finite.

    Returns the clipped parameters' gradient norm before clipping, or None when the step was skipped. A
    skipped step leaves weights, momentum and weight decay untouched, so one overflowing batch costs one
    step, not the run. Reading whether the norms are finite is the step's one host sync (fp16's
    GradScaler makes the same one to skip its own overflowing steps).
    """
    state.scaler.unscale_(state.optimizer)
    clipped, rest = state.clip_groups
    norm = clip_global_norm(clipped, state.clip_grad_norm or math.inf)  # sharded blocks: the global norm
    total = norm + global_grad_norm(rest) if rest else norm  # finite iff every gradient is
    if not torch.isfinite(total):
        if state.fused_class_update:
            discard_deferred(state.parameters)
        return None
    with _decay_in_place(state.optimizer):
        state.scaler.step(state.optimizer)
    if state.fused_class_update:  # the class weights' step, chunk by chunk
        step_deferred(state.optimizer)
    return norm


@contextlib.contextmanager
def _decay_in_place(optimizer: torch.optim.Optimizer):
    """SGD's weight decay added into the gradients in place, the step then run without it: the same sums
    (torch's SGD adds `grad + weight_decay * param` out of place, a temporary as large as every parameter:
    a sharded classifier's whole block). Other optimizers and settings are left to do their own."""
    decayed = []
    if type(optimizer) is torch.optim.SGD:
        for group in optimizer.param_groups:
            wd = group["weight_decay"]
            if isinstance(wd, float | int) and wd != 0 and not group["maximize"] and not group["differentiable"]:
                for param in group["params"]:
                    if param.grad is not None and not param.grad.is_sparse:
                        param.grad.add_(param, alpha=wd)
                decayed.append((group, wd))
                group["weight_decay"] = 0.0
    try:
        yield
    finally:
        for group, wd in decayed:
            group["weight_decay"] = wd


def _save_buffers(state: TrainState) -> None:
    """Copy the running statistics (BatchNorm, center-loss centers: buffers the forward pass updates), so a
    skipped step can put them back; one fused copy, no host sync."""
    buffers = state.buffers
    if state.buffer_backup is None:
        state.buffer_backup = [b.detach().clone() for b in buffers]
    elif buffers:
        torch._foreach_copy_(state.buffer_backup, buffers)


def _restore_buffers(state: TrainState) -> None:
    if state.buffers:
        torch._foreach_copy_(state.buffers, state.buffer_backup)


def _mirror(state: TrainState, images: torch.Tensor) -> torch.Tensor:
    """Seeded mirroring; a distributed rank mirrors its rows of the global batch as one process would."""
    seed, world = int(state.cfg.seed), world_size()
    if world == 1:
        return random_hflip(images, seed, state.iteration)
    batch = int(state.cfg.batch_size)
    return random_hflip(images, seed, state.iteration, rows=rank_rows(batch, rank(), world), batch_size=batch)


def train_step(state: TrainState, images: torch.Tensor, labels: torch.Tensor, hflip: bool = False
               ) -> dict[str, torch.Tensor]:
    """Advance `state` by one iteration on a batch (this rank's share of it under torchrun); returns the batch's
    statistics as device tensors.

    Mirroring is seeded by (seed, iteration), so a resumed run repeats it exactly. A step whose gradients
    are not finite is skipped and counted (`state.skipped_steps`): weights, optimizer state and the running
    statistics stay as they were, and its batch statistics are left out of the means.
    """
    state.iteration += 1
    images = images.to(state.device, non_blocking=True)
    labels = labels.to(state.device, non_blocking=True)
    if hflip:
        images = _mirror(state, images)
    images = to_memory_format(images, state.channels_last)
    _save_buffers(state)
    for shard in state.class_shards:  # class sampling draws from (seed, iteration)
        shard.iteration = state.iteration
    embeddings, out = state.network(images, labels)  # the backbone under autocast (state.precision), the loss in fp32
    state.optimizer.zero_grad(set_to_none=True)
    if state.fused_class_update:  # a deferred gradient left by an interrupted step is stale
        discard_deferred(state.parameters)
    state.scaler.scale(out.total).backward()
    grad_norm = _optimizer_step(state)
    state.optimizer.zero_grad(set_to_none=True)  # no gradient held between steps (a sharded C x D block's is large)
    state.scaler.update()
    state.scheduler.step()
    if grad_norm is None:
        _restore_buffers(state)
        state.skipped_steps += 1
        return {}
    return batch_stats(out, embeddings, labels) | {"grad_norm": grad_norm.detach()}
