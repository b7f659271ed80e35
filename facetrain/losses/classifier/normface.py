"""NormFaceLoss: softmax over s * cos(f, W_j), features and weights L2-normalized, s learned (Wang et al. 2017, eq. 6).

The normalizations live in the loss (with `head=identity`), so table 2's ablations — features only,
weights only — are one option of one class.

Also here, the lower bound of the normalized softmax loss: log(1 + (n-1) exp(-n/(n-1) * l^2)) (Wang et al. 2017, prop. 2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from facetrain.errors import FacetrainError
from facetrain.losses.base import class_matmul
from facetrain.losses.classifier.margin_softmax import MarginSoftmaxLoss

__all__ = ["NormFaceLoss", "normface_loss_bound"]


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


_MODES = ("both", "features", "weights")


class NormFaceLoss(MarginSoftmaxLoss):
    """NormFace's reformulated softmax (no bias, prop. 1).

    Args:
        embedding_dim: feature size.
        num_classes: number of training identities.
        normalize: `both` (the paper's loss: s * cos), `features` (s * f~ . W, table 2's "feature
            only") or `weights` (f . W~, "weight only"; the paper finds it needs no scale, so s is unused).
        scale: s, or its initial value when learned (the released prototxt starts at 10).
        learn_scale: learn s (the paper's preference) or keep it fixed (e.g. 20 or 30, §3.3).
        **kwargs: min_scale and the lr / weight-decay multipliers of `MarginSoftmaxLoss`.
    """

    term_name = "normface"

    def __init__(self, embedding_dim: int, num_classes: int, normalize: str = "both", scale: float = 10.0,
                 learn_scale: bool = True, **kwargs):
        if normalize not in _MODES:
            raise FacetrainError(f"loss.normalize={normalize!r} is not one of {', '.join(_MODES)}")
        if normalize == "weights":
            scale, learn_scale = 1.0, False
        super().__init__(embedding_dim, num_classes, scale=scale, learn_scale=learn_scale, **kwargs)
        self.normalize = normalize
        self.num_classes = num_classes

    def class_similarities(self, features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """f~ . W~ (`both`), f~ . W (`features`) or f . W~ (`weights`), for the given class weights."""
        f = F.normalize(features, dim=1) if self.normalize != "weights" else features
        w = F.normalize(weight, dim=1) if self.normalize != "features" else weight
        return class_matmul(f, w, self.matmul_dtype)

    def scalars(self) -> dict[str, float]:
        """s and, when both sides are normalized, the prop. 2 lower bound of the loss at that s."""
        if self.normalize == "weights":
            return {}
        values = {"s": self._scale_value()}
        if self.normalize == "both" and self.num_classes > 1:
            values["loss_bound"] = normface_loss_bound(self.num_classes, self._scale_value())
        return values
