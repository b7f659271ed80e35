"""train_step: one iteration — forward, loss, backward, precision, optimizer and LR schedule."""

from __future__ import annotations

import torch

from facetrain.data.augment import random_hflip
from facetrain.train.progress import batch_stats
from facetrain.train.state import TrainState

__all__ = ["train_step"]


def train_step(state: TrainState, images: torch.Tensor, labels: torch.Tensor, hflip: bool = False
               ) -> dict[str, torch.Tensor]:
    """Advance `state` by one iteration on a batch; returns the batch's statistics as device tensors.

    Mirroring is seeded by (seed, iteration), so a resumed run repeats it exactly. Nothing here reads
    a value back to the host, so a CUDA step never waits for the GPU.
    """
    state.iteration += 1
    images = images.to(state.device, non_blocking=True)
    labels = labels.to(state.device, non_blocking=True)
    if hflip:
        images = random_hflip(images, int(state.cfg.seed), state.iteration)
    with torch.autocast(state.device.type, enabled=state.amp):
        embeddings, features = state.model(images)
        out = state.loss(features, labels)
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(out.total).backward()
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.scheduler.step()
    return batch_stats(out, embeddings, labels)
