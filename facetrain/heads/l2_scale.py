"""L2ScaleHead: L2-normalize the feature, then scale it to radius alpha (Ranjan et al. 2017, eqs. 4-5).

The lower bound on the L2-softmax scale: alpha_low = log(p (C - 2) / (1 - p)) (Ranjan et al. 2017, eq. 9).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from facetrain.config import check_alpha
from facetrain.errors import FacetrainError

__all__ = ["L2ScaleHead", "alpha_lower_bound"]


def alpha_lower_bound(num_classes: int, p: float = 0.9) -> float:
    """Smallest alpha at which an average feature is classified with probability p among C classes."""
    if not 0.0 < p < 1.0:
        raise FacetrainError(f"head.p={p} must be strictly between 0 and 1 (the target softmax probability)")
    if num_classes <= 2:
        raise FacetrainError(f"alpha=auto needs more than 2 classes (eq. 9 has log(C - 2)); got {num_classes}")
    return math.log(p * (num_classes - 2) / (1.0 - p))


class L2ScaleHead(nn.Module):
    """z = alpha * x / ||x||.

    Args:
        alpha: a positive number (fixed), `auto` (fixed at the eq. 9 lower bound for
            `num_classes` and `p`) or `trained` (learned, starting from that bound — the
            paper's "alpha trained").
        num_classes: number of training identities; needed by `auto` and `trained`.
        p: target softmax probability of eq. 9.
        trainable: learn alpha starting from the given number.

    The backward pass is autograd's; it matches the paper's eq. 6 (tested).
    """

    def __init__(self, alpha: float | str = 16.0, num_classes: int | None = None, p: float = 0.9,
                 trainable: bool = False):
        super().__init__()
        alpha = check_alpha(alpha)
        self.bound = alpha_lower_bound(num_classes, p) if num_classes and num_classes > 2 else float("nan")
        if alpha in ("auto", "trained"):
            alpha_lower_bound(num_classes or 0, p)  # raises a clear error when it is not defined
            trainable = trainable or alpha == "trained"
            alpha = self.bound
        value = torch.tensor(float(alpha))
        if trainable:
            self.alpha = nn.Parameter(value)
        else:
            self.register_buffer("alpha", value)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.alpha * F.normalize(embeddings, dim=1)

    def scalars(self) -> dict[str, float]:
        """Values worth logging: alpha and the eq. 9 bound it is compared with."""
        return {"alpha": float(self.alpha.detach()), "alpha_bound": self.bound}
