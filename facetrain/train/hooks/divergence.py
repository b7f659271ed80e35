"""DivergenceHook: count non-finite windows; after `patience` in a row, save diverged.pt and stop with a sentence."""

from __future__ import annotations

import logging
import math

from facetrain.errors import TrainingDiverged
from facetrain.run.checkpoint import checkpoint_path
from facetrain.train.hooks.base import Hook
from facetrain.train.state import TrainState

__all__ = ["DivergenceHook"]

log = logging.getLogger(__name__)


class DivergenceHook(Hook):
    """Watches each logged window (on every rank: all of them must stop together).

    A window is bad when its mean loss is not finite or every step in it was skipped for non-finite
    gradients. Skipped steps leave the weights as they were, so a passing spike costs nothing; while a
    window is bad, `last.pt` is not overwritten (it stays the last good state). `patience` bad windows in
    a row stop the run: the current state goes to `checkpoints/diverged.pt` for inspection.

    Args:
        window: iterations per logged window (`log_every`), for the message.
        patience: consecutive bad windows that end the run.
    """

    def __init__(self, window: int, patience: int = 3):
        self.window, self.patience = int(window), max(1, int(patience))
        self._skipped_logged = 0

    def on_log(self, state: TrainState, means: dict[str, float]) -> None:
        if state.skipped_steps > self._skipped_logged:
            log.warning("iteration %d: %d step(s) with non-finite gradients skipped (%d in all)", state.iteration,
                        state.skipped_steps - self._skipped_logged, state.skipped_steps)
            self._skipped_logged = state.skipped_steps
        loss = means.get("loss", math.nan)
        state.bad_windows = 0 if math.isfinite(loss) else state.bad_windows + 1
        if state.bad_windows < self.patience:
            return
        diverged = checkpoint_path(state.run_dir, "diverged")
        state.save(diverged)
        since = state.iteration - self.patience * self.window
        raise TrainingDiverged(
            f"the training loss was not finite in every iteration window since iteration {max(since, state.start)} "
            f"and training stopped at iteration {state.iteration} ({state.skipped_steps} steps skipped); "
            f"checkpoints/last.pt holds the last good state and {diverged.name} this one; lower the learning rate "
            "(optim.lr=...), warm up longer (warmup.iterations=...) or clip gradients (clip_grad_norm=...)")
