"""ProgressBarHook: the tqdm bar with the logged window's loss, accuracy and learning rate."""

from __future__ import annotations

from tqdm import tqdm

from facetrain.train.hooks.base import Hook
from facetrain.train.state import TrainState

__all__ = ["ProgressBarHook"]


class ProgressBarHook(Hook):
    main_process_only = True

    def __init__(self, iterations: int, enabled: bool = True):
        self.iterations, self.enabled = int(iterations), bool(enabled)
        self.bar: tqdm | None = None

    def on_start(self, state: TrainState) -> None:
        self.bar = tqdm(total=self.iterations, initial=state.start, desc="train", disable=not self.enabled,
                        dynamic_ncols=True)

    def on_log(self, state: TrainState, means: dict[str, float]) -> None:
        self.bar.set_postfix(loss=f"{means.get('loss', float('nan')):.3f}", acc=f"{means.get('acc', float('nan')):.3f}",
                             lr=f"{state.optimizer.param_groups[0]['lr']:.2g}", refresh=False)

    def after_step(self, state: TrainState) -> None:
        self.bar.update(1)

    def on_end(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()
