"""Training hooks: what happens around each step (logging to TensorBoard or MLflow, progress bar, validation and
best.pt, checkpoints, divergence, signals), one module each."""

from facetrain.train.hooks.base import Hook, HookList
from facetrain.train.hooks.checkpointing import CheckpointHook
from facetrain.train.hooks.divergence import DivergenceHook
from facetrain.train.hooks.frozen_bn import FrozenBatchNormHook
from facetrain.train.hooks.mlflow_tracking import MlflowHook
from facetrain.train.hooks.progress_bar import ProgressBarHook
from facetrain.train.hooks.signals import StopOnSignalHook, ignore_stop_signals
from facetrain.train.hooks.tensorboard import TensorBoardHook
from facetrain.train.hooks.validation import ValidationHook

__all__ = ["CheckpointHook", "DivergenceHook", "FrozenBatchNormHook", "Hook", "HookList", "MlflowHook", "ProgressBarHook", "StopOnSignalHook",
           "TensorBoardHook", "ValidationHook", "ignore_stop_signals"]
