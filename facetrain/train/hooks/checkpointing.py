"""CheckpointHook: checkpoints/last.pt every `every` iterations and at the last one, written atomically.

Skipped while the latest logged window's loss was not finite (see DivergenceHook).
"""

from __future__ import annotations

from facetrain.train.hooks.base import Hook
from facetrain.train.state import TrainState

__all__ = ["CheckpointHook"]


class CheckpointHook(Hook):
    """Runs on every rank (a sharded classifier is gathered for the checkpoint); rank 0 writes."""

    def __init__(self, every: int, iterations: int):
        self.every, self.iterations = int(every), int(iterations)

    def after_step(self, state: TrainState) -> None:
        due = state.iteration % self.every == 0 or state.iteration == self.iterations
        if due and state.bad_windows == 0:  # while the loss is not finite, last.pt stays the last good state
            state.save(state.checkpoint)
