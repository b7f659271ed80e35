"""Backbones: image -> embedding. Each knows its input size and nothing about classes."""

from facetrain.backbones.input_norm import InputNorm
from facetrain.backbones.small_cnn import SmallFaceCNN

__all__ = ["InputNorm", "SmallFaceCNN"]
