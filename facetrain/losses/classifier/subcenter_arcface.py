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

__all__ = ["SubCenterArcFaceLoss", "dominant_subcenters", "subcenter_cosines"]


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


@torch.no_grad()
def dominant_subcenters(features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor,
                        chunk: int = 1 << 14) -> tuple[torch.Tensor, torch.Tensor]:
    """Each class's dominant sub-centre, the one most of its images are closest to, and each image's cosine to
    its own class's dominant sub-centre (the released `drop.py`: ties go to the lower index, as np.argmax).

    Args:
        features: [N, D] the training images' features (normalized here).
        labels: [N] their classes.
        weight: [C, K, D] sub-centres, or [C, D] class weights (K = 1).
        chunk: images per step (an image meets only its own class's K sub-centres).

    Returns:
        (dominant [C] sub-centre index, 0 for a class without images; cosine [N]).
    """
    weight = F.normalize(weight.float() if weight.dim() == 3 else weight.float().unsqueeze(1), dim=2)
    features, labels = F.normalize(features.float(), dim=1), labels.long()
    sims = torch.cat([torch.einsum("nkd,nd->nk", weight[labels[i:i + chunk]], features[i:i + chunk])
                      for i in range(0, len(labels), chunk)]) if len(labels) else features.new_zeros((0, weight.shape[1]))
    votes = torch.zeros(weight.shape[:2], dtype=torch.long, device=labels.device)
    votes.index_put_((labels, sims.argmax(dim=1)), torch.ones_like(labels), accumulate=True)
    dominant = votes.argmax(dim=1)
    return dominant, sims.gather(1, dominant[labels].view(-1, 1)).squeeze(1)
