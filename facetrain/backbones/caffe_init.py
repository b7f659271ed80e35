"""Caffe's weight fillers, for the backbones ported from Caffe models (Face-ResNet, SphereFace, LeNet++)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["caffe_gaussian_", "caffe_xavier_"]


@torch.no_grad()
def caffe_xavier_(weight: torch.Tensor) -> torch.Tensor:
    """Caffe's `xavier` filler: uniform in +-sqrt(3 / fan_in).

    Caffe's default variance_norm is FAN_IN, unlike PyTorch's xavier_uniform_ (mean of fan_in and
    fan_out); kaiming_uniform_ with a=1 has gain 1 and gives exactly sqrt(3 / fan_in).
    """
    return nn.init.kaiming_uniform_(weight, a=1.0)


@torch.no_grad()
def caffe_gaussian_(weight: torch.Tensor, std: float) -> torch.Tensor:
    """Caffe's `gaussian` filler: N(0, std^2)."""
    return nn.init.normal_(weight, 0.0, std)
