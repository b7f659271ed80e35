"""The one place that decides where tensors live."""

from __future__ import annotations

import torch

from facetrain.errors import FacetrainError

__all__ = ["pick_device"]


def pick_device(name: str = "auto") -> torch.device:
    """`auto` = CUDA when present, else CPU; `cpu`, `cuda`, `cuda:1` as asked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FacetrainError(f"device={name} asked for CUDA but none is available; use device=auto or device=cpu")
    return device
