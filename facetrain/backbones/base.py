"""Backbone: what every backbone carries besides its layers (sizes, channels, the pixel normalization)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from facetrain.backbones.input_norm import InputNorm
from facetrain.backbones.sizes import as_size

__all__ = ["Backbone"]


class Backbone(nn.Module):
    """An image -> embedding network that knows the images it takes and the embedding it gives.

    The loss sizes itself from `embedding_dim`, eval and export build inputs from `input_size` and
    `in_channels`. Subclasses call `super().__init__(...)` before building their layers and apply
    `self.norm` to the raw uint8 pixels first, so exported files take pixels too. `InputNorm` holds
    no parameters or buffers: this class adds nothing to parameter counts or state dicts.

    Args:
        embedding_dim: size of the embedding the network outputs.
        input_size: (height, width) the network is built for.
        in_channels: image channels (3 for colour faces, 1 for grey digits).
        input_std: the pixel divisor of `InputNorm` (128; arcface_torch's models: 127.5).
    """

    def __init__(self, embedding_dim: int, input_size: Sequence[int], in_channels: int = 3, input_std: float = 128.0):
        super().__init__()
        self.input_size = as_size(input_size)
        self.embedding_dim = int(embedding_dim)
        self.in_channels = int(in_channels)
        self.norm = InputNorm(input_std)
