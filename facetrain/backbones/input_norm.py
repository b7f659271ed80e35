"""The one place where pixels become network inputs: (x - 127.5) / 128, as in the papers' Caffe models.

insightface's arcface_torch models were trained on (x / 255 - 0.5) / 0.5 = (x - 127.5) / 127.5 instead:
`std=127.5` (an IResNet's `input_std`) feeds them exactly as they were trained.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["InputNorm"]


class InputNorm(nn.Module):
    """Map uint8 (or float 0..255) images to roughly [-1, 1].

    Living inside the backbone, it travels with exported models, so a deployed
    network takes raw pixels exactly as during training. A plain float, not a buffer: state dicts
    stay the same whatever the divisor.

    Args:
        std: the divisor (128 for the Caffe-era models, 127.5 for arcface_torch's).
    """

    def __init__(self, std: float = 128.0):
        super().__init__()
        self.scale = 1.0 / float(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - 127.5) * self.scale

    def extra_repr(self) -> str:
        return f"std={1.0 / self.scale:g}"
