"""SubCenterArcFaceLoss: ArcFace over K sub-centres per class, a sample's cosine to a class being the largest of its
K (Deng et al. 2020, Sub-center ArcFace; insightface's `recognition/subcenter_arcface`).

A noisy image only has to be close to one of its class's sub-centres, so the clean faces gather around a
dominant one and the noise around the others; `facetrain data outliers` then lists the images far from the
dominant sub-centre (the paper's cleaning step; the released `drop.py`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facetrain.errors import FacetrainError
from facetrain.losses.base import class_matmul
from facetrain.losses.classifier.arcface import ArcFaceLoss
from facetrain.sharded.rows import draw_rows

__all__ = ["SubCenterArcFaceLoss", "subcenter_cosines"]


def subcenter_cosines(features: torch.Tensor, weight: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """cos between each feature and each sub-centre.

    Args:
        features: [B, D] features (normalized here).
        weight: [c, K, D] sub-centres of c classes (normalized here).
        dtype: the matmul's compute dtype (None: as given).

    Returns:
        [B, c, K] cosines.
    """
    c, k, d = weight.shape
    flat = F.normalize(weight, dim=2).reshape(c * k, d)  # insightface's fc7 layout: row c * K + k
    return class_matmul(F.normalize(features, dim=1), flat, dtype).view(features.shape[0], c, k)


class SubCenterArcFaceLoss(ArcFaceLoss):
    """ArcFace on cos θ_j = max_k cos(x, W_jk). Defaults K = 3, s = 64, m = 0.5 (the paper's).

    The weight is one [K, D] row per class ([C, K, D]): sharding and class sampling split and pick classes,
    so a class's sub-centres always stay together, and a checkpoint resumes at any world size.
    `weight.reshape(C * K, D)` is insightface's fc7 layout (class j's sub-centres in rows jK ... jK + K - 1).

    Args:
        subcenters: K, the sub-centres per class (1 is ArcFace).
        **kwargs: margin, scale and the rest of `ArcFaceLoss`.
    """

    term_name = "subcenter_arcface"

    def __init__(self, embedding_dim: int, num_classes: int, subcenters: int = 3, **kwargs):
        if int(subcenters) < 1:
            raise FacetrainError(f"loss.subcenters={subcenters} must be a positive integer (the paper's K = 3)")
        self.subcenters = int(subcenters)  # before the base builds the weight, which reads it
        super().__init__(embedding_dim, num_classes, **kwargs)

    def initial_weight(self, num_classes: int, embedding_dim: int) -> nn.Parameter:
        """[C, K, D] Gaussian sub-centres of unit norm, drawn class block by class block."""
        def fill(shape, generator):
            return F.normalize(torch.randn(shape, generator=generator), dim=-1)

        return nn.Parameter(draw_rows(num_classes, (self.subcenters, embedding_dim), fill))

    def class_similarities(self, features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """max over each class's K sub-centres of the cosine to them: [B, c] for [c, K, D] weights."""
        return subcenter_cosines(features, weight, self.matmul_dtype).amax(dim=2)
