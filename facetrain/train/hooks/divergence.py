"""DivergenceHook: stop a run whose loss is no longer finite, with a sentence instead of NaN weights."""

from __future__ import annotations

import math

from facetrain.errors import TrainingDiverged
from facetrain.train.hooks.base import Hook
from facetrain.train.state import TrainState

__all__ = ["DivergenceHook"]


class DivergenceHook(Hook):
    """Checks each logged window's mean loss (on every rank: all of them must stop together)."""

    def __init__(self, window: int):
        self.window = int(window)

    def on_log(self, state: TrainState, means: dict[str, float]) -> None:
        loss = means["loss"]
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"the training loss became {loss} within the {self.window} iterations before iteration "
                f"{state.iteration}; lower the learning rate (optim.lr=...) or check the data")
