"""AgentDistortion: a moving average of NormFace prop. 3's bound, (1/n_Ci) sum_{j in Ci} d(f_j, W_i)^2."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AgentDistortion"]


class AgentDistortion(nn.Module):
    """Tracks the bound on the distortion of replacing a class's samples by its agent.

    Each training batch gives the mean, over the classes it contains, of the mean squared normalized
    distance between a class's features and its agent; an exponential moving average of that is the
    logged value (the paper reports it is usually 0.5-0.6 and sets the margins above it).

    Args:
        momentum: weight of the old average (0.99: about the last 100 batches).
    """

    def __init__(self, momentum: float = 0.99):
        super().__init__()
        self.momentum = float(momentum)
        self.register_buffer("value", torch.tensor(float("nan")))

    @torch.no_grad()
    def update(self, own_distances: torch.Tensor, labels: torch.Tensor) -> None:
        """own_distances: [B] squared normalized distance of each feature to its own class's agent."""
        classes, inverse = torch.unique(labels, return_inverse=True)
        dtype = self.value.dtype
        sums = torch.zeros(len(classes), device=labels.device, dtype=dtype).index_add_(0, inverse, own_distances.to(dtype))
        counts = torch.bincount(inverse, minlength=len(classes)).to(dtype)
        batch = (sums / counts).mean()
        if torch.isnan(self.value):
            self.value.copy_(batch)
        else:
            self.value.mul_(self.momentum).add_((1.0 - self.momentum) * batch)
