"""The one place where pixels become network inputs: (x - 127.5) / 128, as in the papers' Caffe models."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["InputNorm"]


class InputNorm(nn.Module):
    """Map uint8 (or float 0..255) images to roughly [-1, 1].

    Living inside the backbone, it travels with exported models, so a deployed
    network takes raw pixels exactly as during training.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - 127.5) * 0.0078125
