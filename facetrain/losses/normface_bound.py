"""The NormFace lower bound of the normalized softmax loss: log(1 + (n-1) exp(-n/(n-1) * l^2)) (Wang et al. 2017, prop. 2)."""

from __future__ import annotations

import math

from facetrain.errors import FacetrainError

__all__ = ["normface_loss_bound"]


def normface_loss_bound(num_classes: int, scale: float) -> float:
    """Lowest softmax loss reachable when features and weights all have squared norm `scale` (s = l^2).

    Args:
        num_classes: n, the number of classes (> 1).
        scale: s = l^2, the factor on the cosine (1 for plain unit normalization).

    Returns:
        The bound of proposition 2 (e.g. 8.27 for n = 10,575 and s = 1).
    """
    if num_classes < 2:
        raise FacetrainError(f"the NormFace loss bound needs at least 2 classes; got {num_classes}")
    n = num_classes
    return math.log1p((n - 1) * math.exp(-n / (n - 1) * scale))
