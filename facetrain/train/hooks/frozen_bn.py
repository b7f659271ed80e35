"""FrozenBatchNormHook: `finetune.freeze_bn=true` keeps the backbone's BatchNorm layers in eval mode all run long."""

from __future__ import annotations

from facetrain.train.finetune import batchnorms
from facetrain.train.hooks.base import Hook
from facetrain.train.state import TrainState

__all__ = ["FrozenBatchNormHook"]


class FrozenBatchNormHook(Hook):
    """Puts the backbone's BatchNorm layers back in eval mode at the start and after every step (validation
    switches the whole model to train mode when it is done), so their running statistics never move.
    `freeze_batchnorm` took their scales and shifts out of the optimizer when the run was built."""

    def __init__(self):
        self.layers = []

    def on_start(self, state: TrainState) -> None:
        self.layers = batchnorms(state.model.backbone)
        self.after_step(state)

    def after_step(self, state: TrainState) -> None:
        for layer in self.layers:
            layer.eval()
