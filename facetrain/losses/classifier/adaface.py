"""AdaFaceLoss: a margin adapted to image quality, read from the feature norm (Kim et al. 2022, AdaFace, §3).

The norm's batch statistics are kept as running averages (momentum `t_alpha`, the released training default
0.01); each sample's norm, standardized by them and scaled by h, moves the margin between the angular and the
additive form: target logit s * (cos(theta_y + g_angle) - g_add), g_angle = -m z, g_add = m z + m, z the clipped
standardized norm. High-norm (high-quality) samples get the angular margin (ArcFace-like, emphasizing hard
samples), low-norm ones the additive one (CosFace-like, easy samples).
"""

from __future__ import annotations

import math

import torch

from facetrain.errors import FacetrainError
from facetrain.losses.classifier.batch_stats import global_mean_std
from facetrain.losses.classifier.margin_softmax import MarginSoftmaxLoss
from facetrain.losses.output import LossOutput

__all__ = ["AdaFaceLoss"]


class AdaFaceLoss(MarginSoftmaxLoss):
    """Norm-adaptive margin. Defaults m = 0.4, h = 0.333, s = 64, t_alpha = 0.01 (the authors' training scripts).

    The loss needs the features before normalization (the head must be `identity`): their norm is the
    quality proxy. As in the released code, the norms are clipped to [0.001, 100] and detached, all cosines
    are clipped to [-1 + eps, 1 - eps], the margined angle to [eps, pi - eps] (eps = 1e-3), and the running
    mean and std start at 20 and 100. The statistics are those of the global batch (every rank the same).

    Args:
        margin: m.
        h: the concentration of the standardized norm (h = 0.333: 68% of the samples have |z| < 0.333).
        t_alpha: the weight of the current batch in the running mean and std of the norm.
        **kwargs: embedding_dim, num_classes, scale and the rest of `MarginSoftmaxLoss`.
    """

    term_name = "adaface"
    eps = 1e-3

    def __init__(self, embedding_dim: int, num_classes: int, margin: float = 0.4, h: float = 0.333,
                 t_alpha: float = 0.01, scale: float = 64.0, **kwargs):
        super().__init__(embedding_dim, num_classes, scale=scale, **kwargs)
        self.margin, self.h, self.t_alpha = float(margin), float(h), float(t_alpha)
        if not 0 < self.t_alpha <= 1:
            raise FacetrainError(f"loss.t_alpha={t_alpha} must be in (0, 1]: the current batch's weight in the "
                                 "running norm statistics (0.01 as the authors train; 1 = each batch alone)")
        self.register_buffer("batch_mean", torch.tensor(20.0))
        self.register_buffer("batch_std", torch.tensor(100.0))

    def _norms(self, features: torch.Tensor) -> torch.Tensor:
        return features.detach().norm(dim=1).clamp(0.001, 100.0)

    def class_similarities(self, features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return super().class_similarities(features, weight).clamp(-1.0 + self.eps, 1.0 - self.eps)

    def target_cosine(self, cos_y: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        z = (self._norms(features).view(-1, 1) - self.batch_mean) / (self.batch_std + self.eps)
        z = (z * self.h).clamp(-1.0, 1.0)
        theta = torch.acos(cos_y).add(-self.margin * z).clamp(self.eps, math.pi - self.eps)
        return torch.cos(theta) - (self.margin + self.margin * z)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        if self.training:  # the statistics of this batch (all ranks' rows) join the running ones, then are used
            mean, std = global_mean_std(self._norms(features.to(self.batch_mean.dtype)))
            self.batch_mean.mul_(1.0 - self.t_alpha).add_(self.t_alpha * mean)
            self.batch_std.mul_(1.0 - self.t_alpha).add_(self.t_alpha * std)
        return super().forward(features, labels)

    def scalars(self) -> dict[str, float]:
        return super().scalars() | {"norm_mean": float(self.batch_mean), "norm_std": float(self.batch_std)}
