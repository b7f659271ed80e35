"""TensorBoardHook: the logged window's means, the learning rate and the model's scalars under `train/`."""

from __future__ import annotations

from torch.utils.tensorboard import SummaryWriter

from facetrain.train.hooks.base import Hook
from facetrain.train.state import TrainState

__all__ = ["TensorBoardHook"]


class TensorBoardHook(Hook):
    main_process_only = True

    def __init__(self):
        self.writer: SummaryWriter | None = None

    def on_start(self, state: TrainState) -> None:
        # purge_step drops what a crashed run logged after its last checkpoint, so curves don't fold back
        self.writer = SummaryWriter(str(state.run_dir / "tb"), purge_step=state.start + 1)

    def on_log(self, state: TrainState, means: dict[str, float]) -> None:
        values = means | {"lr": state.optimizer.param_groups[0]["lr"], "skipped_steps": state.skipped_steps}
        values |= state.scalars()
        for key, value in values.items():
            self.writer.add_scalar(f"train/{key}", value, state.iteration)

    def after_step(self, state: TrainState) -> None:
        for key, value in state.pending_scalars.items():  # full names, e.g. val/lfw/acc_mean
            self.writer.add_scalar(key, value, state.iteration)

    def on_end(self, state: TrainState) -> None:
        if self.writer is not None:
            self.writer.close()
