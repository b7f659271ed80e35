"""Training: the loop, device choice, checkpoints and the metrics file."""

from facetrain.train.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from facetrain.train.device import pick_device
from facetrain.train.metrics_file import read_metrics, update_metrics
from facetrain.train.trainer import train

__all__ = [
    "find_checkpoint",
    "load_checkpoint",
    "pick_device",
    "read_metrics",
    "save_checkpoint",
    "train",
    "update_metrics",
]
