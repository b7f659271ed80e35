"""train_step: one iteration — forward, loss, backward, precision, clipping, optimizer and LR schedule."""

from __future__ import annotations

import math

import torch

from facetrain.data.augment import random_hflip
from facetrain.train.progress import batch_stats
from facetrain.train.state import TrainState

__all__ = ["train_step"]


def _optimizer_step(state: TrainState) -> torch.Tensor | None:
    """Unscale, clip to `clip_grad_norm` (if set), and step unless the gradients are not finite.

    Returns the global gradient norm before clipping, or None when the step was skipped. A skipped step leaves weights, momentum and weight decay
    untouched, so one overflowing batch costs one step, not the run. Reading the norm is the step's one
    host sync (fp16's GradScaler makes the same one to skip its own overflowing steps).
    """
    state.scaler.unscale_(state.optimizer)
    max_norm = state.clip_grad_norm or math.inf
    norm = torch.nn.utils.clip_grad_norm_(state.parameters, max_norm)
    if not torch.isfinite(norm):
        return None
    state.scaler.step(state.optimizer)
    return norm


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


def train_step(state: TrainState, images: torch.Tensor, labels: torch.Tensor, hflip: bool = False
               ) -> dict[str, torch.Tensor]:
    """Advance `state` by one iteration on a batch; returns the batch's statistics as device tensors.

    Mirroring is seeded by (seed, iteration), so a resumed run repeats it exactly. A step whose gradients
    are not finite is skipped and counted (`state.skipped_steps`): weights, optimizer state and the running
    statistics stay as they were, and its batch statistics are left out of the means.
    """
    state.iteration += 1
    images = images.to(state.device, non_blocking=True)
    labels = labels.to(state.device, non_blocking=True)
    if hflip:
        images = random_hflip(images, int(state.cfg.seed), state.iteration)
    _save_buffers(state)
    with torch.autocast(state.device.type, enabled=state.amp):
        embeddings, features = state.model(images)
        out = state.loss(features, labels)
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(out.total).backward()
    grad_norm = _optimizer_step(state)
    state.scaler.update()
    state.scheduler.step()
    if grad_norm is None:
        _restore_buffers(state)
        state.skipped_steps += 1
        return {}
    return batch_stats(out, embeddings, labels) | {"grad_norm": grad_norm.detach()}
