"""MagFaceLoss: an ArcFace margin growing with the feature norm, plus a regularizer that rewards a large norm
(Meng et al. 2021, MagFace, §3), so the norm becomes a quality score.

L = CE(s cos(theta_y + m(a)) at the target, s cos(theta_j) elsewhere) + lambda_g g(a), with a = ||x|| clamped to
[l_a, u_a], m(a) = l_m + (u_m - l_m)(a - l_a)/(u_a - l_a) and g(a) = 1/a + a/u_a^2, averaged over the batch.
"""

from __future__ import annotations

import math

import torch

from facetrain.errors import FacetrainError
from facetrain.losses.classifier.batch_stats import global_mean
from facetrain.losses.classifier.margin_softmax import MarginSoftmaxLoss
from facetrain.losses.output import LossOutput

__all__ = ["MagFaceLoss"]


class MagFaceLoss(MarginSoftmaxLoss):
    """Magnitude-aware margin. Defaults s = 64, [l_a, u_a] = [10, 110], [l_m, u_m] = [0.45, 0.8], lambda_g = 35
    (the authors' run script), and the released code's "easy margin": the margin only where cos(theta_y) > 0.

    The loss needs the features before normalization (the head must be `identity`). The margin's gradient
    reaches the norm, as in the released code; both the margin and g see the clamped norm.

    Args:
        l_a, u_a: the norm's range.
        l_margin, u_margin: the margins at l_a and u_a.
        lambda_g: the weight of the regularizer g.
        easy_margin: margin only where cos(theta_y) > 0 (released default); false: ArcFace's fallback
            cos(theta_y) - m sin(m) beyond theta_y + m = pi.
        **kwargs: embedding_dim, num_classes, scale and the rest of `MarginSoftmaxLoss`.
    """

    term_name = "magface"

    def __init__(self, embedding_dim: int, num_classes: int, l_a: float = 10.0, u_a: float = 110.0,
                 l_margin: float = 0.45, u_margin: float = 0.8, lambda_g: float = 35.0, easy_margin: bool = True,
                 scale: float = 64.0, **kwargs):
        super().__init__(embedding_dim, num_classes, scale=scale, **kwargs)
        self.l_a, self.u_a, self.l_margin, self.u_margin = float(l_a), float(u_a), float(l_margin), float(u_margin)
        self.lambda_g, self.easy_margin = float(lambda_g), bool(easy_margin)
        if not 0 < self.l_a < self.u_a:
            raise FacetrainError(f"loss.l_a={l_a} and loss.u_a={u_a}: the norm's range needs 0 < l_a < u_a "
                                 "(the paper's 10 and 110)")

    def norm(self, features: torch.Tensor) -> torch.Tensor:
        """a: each feature's norm clamped to [l_a, u_a] ([B, 1])."""
        return features.norm(dim=1, keepdim=True).clamp(self.l_a, self.u_a)

    def margin(self, a: torch.Tensor) -> torch.Tensor:
        """m(a), linear from l_margin at l_a to u_margin at u_a."""
        return (self.u_margin - self.l_margin) / (self.u_a - self.l_a) * (a - self.l_a) + self.l_margin

    def regularizer(self, a: torch.Tensor) -> torch.Tensor:
        """g(a) = 1/a + a/u_a^2 per sample."""
        return 1.0 / a + a / self.u_a ** 2

    def class_similarities(self, features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return super().class_similarities(features, weight).clamp(-1.0, 1.0)

    def target_cosine(self, cos_y: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        m = self.margin(self.norm(features))
        sin_y = (1.0 - cos_y * cos_y).clamp_min(1e-12).sqrt()  # away from sin = 0, where d sqrt is infinite
        shifted = cos_y * torch.cos(m) - sin_y * torch.sin(m)
        if self.easy_margin:
            return torch.where(cos_y > 0, shifted, cos_y)
        return torch.where(cos_y > torch.cos(math.pi - m), shifted, cos_y - torch.sin(math.pi - m) * m)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        out = super().forward(features, labels)
        g = self.regularizer(self.norm(features.to(self.weight.dtype)))
        reg = g.mean()
        if self.classes.active:
            # each rank holds the whole batch's cross-entropy but only its own rows here: the value is the
            # global batch's mean, the gradient (this rank's rows; DDP averages the ranks) one process's
            reg = reg + (global_mean(g.detach()) - reg).detach()
        total = out.total + self.lambda_g * reg
        terms = {self.term_name: out.total.detach(), "magface_g": reg.detach()}
        return LossOutput(total=total, terms=terms, logits=out.logits, correct=out.correct)
