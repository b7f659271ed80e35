"""The lower bound on the L2-softmax scale: alpha_low = log(p (C - 2) / (1 - p)) (Ranjan et al. 2017, eq. 9)."""

from __future__ import annotations

import math

from facetrain.errors import FacetrainError

__all__ = ["alpha_lower_bound"]


def alpha_lower_bound(num_classes: int, p: float = 0.9) -> float:
    """Smallest alpha at which an average feature is classified with probability p among C classes."""
    if not 0.0 < p < 1.0:
        raise FacetrainError(f"head.p={p} must be strictly between 0 and 1 (the target softmax probability)")
    if num_classes <= 2:
        raise FacetrainError(f"alpha=auto needs more than 2 classes (eq. 9 has log(C - 2)); got {num_classes}")
    return math.log(p * (num_classes - 2) / (1.0 - p))
