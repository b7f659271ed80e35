"""LossOutput: what every loss returns (the DESIGN.md loss contract)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["LossOutput"]


@dataclass
class LossOutput:
    """total: the scalar to minimise; terms: each named part (for logging); logits: for accuracy."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    logits: torch.Tensor | None = None
