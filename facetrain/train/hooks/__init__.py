"""Training hooks: what happens around each step (logging, checkpoints, divergence checks), one module each."""

from facetrain.train.hooks.base import Hook, HookList
from facetrain.train.hooks.checkpointing import CheckpointHook
from facetrain.train.hooks.divergence import DivergenceHook
from facetrain.train.hooks.progress_bar import ProgressBarHook
from facetrain.train.hooks.tensorboard import TensorBoardHook

__all__ = ["CheckpointHook", "DivergenceHook", "Hook", "HookList", "ProgressBarHook", "TensorBoardHook"]
