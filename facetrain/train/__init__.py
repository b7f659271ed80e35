"""Training: the state, one train_step, the hooks around it, and the loop that runs them."""

from facetrain.train.state import TrainState, build_state
from facetrain.train.step import train_step
from facetrain.train.trainer import train

__all__ = ["TrainState", "build_state", "train", "train_step"]
