"""CurricularFaceLoss: ArcFace's margin at the target, and hard negatives re-weighted by how far training has got
(Huang et al. 2020, CurricularFace, §3).

A negative j is hard when cos(theta_j) > cos(theta_y + m); its logit becomes s cos(theta_j) (t + cos(theta_j)),
where t is a running average (momentum 0.01) of the batch's mean target cosine: early (t near 0) hard negatives
weigh less, later (t near 1) more.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from facetrain.distributed.rank import world_size
from facetrain.errors import FacetrainError
from facetrain.losses.classifier.arcface import ArcFaceLoss
from facetrain.losses.classifier.batch_stats import global_mean
from facetrain.sharded.block_softmax import at_target

__all__ = ["CurricularFaceLoss"]


class CurricularFaceLoss(ArcFaceLoss):
    """Adaptive curriculum margin. Defaults m = 0.5, s = 64, momentum 0.01, t starting at 0 (the released code's).

    Under a sharded classifier each rank re-weights the hard negatives of its block with the same t and the
    same threshold cos(theta_y + m): the target's cosine, held by one rank, is summed over the ranks.

    Args:
        margin: m, in radians, added to the target angle.
        momentum: the weight of the current batch's mean target cosine in t.
        **kwargs: embedding_dim, num_classes, scale and the rest of `MarginSoftmaxLoss`.
    """

    term_name = "curricularface"

    def __init__(self, embedding_dim: int, num_classes: int, margin: float = 0.5, momentum: float = 0.01,
                 scale: float = 64.0, **kwargs):
        super().__init__(embedding_dim, num_classes, margin=margin, scale=scale, **kwargs)
        self.momentum = float(momentum)
        if not 0 < self.momentum <= 1:
            raise FacetrainError(f"loss.momentum={momentum} must be in (0, 1]: the current batch's weight in t "
                                 "(the paper's 0.01)")
        self.register_buffer("t", torch.tensor(0.0))

    def class_similarities(self, features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return super().class_similarities(features, weight).clamp(-1.0, 1.0)

    @torch.no_grad()
    def _target_cosines(self, cos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Every row's cos(theta_y) ([B]), from the block holding it (in the block path, the sum over ranks)."""
        cos_y = at_target(cos.detach(), target)
        if self.classes.active and world_size() > 1:
            dist.all_reduce(cos_y)
        return cos_y

    def margin_logits(self, cos: torch.Tensor, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cos_y = self._target_cosines(cos, target)
        if self.training:  # the block path holds the gathered batch; data parallel ranks reduce theirs
            self.t.mul_(1.0 - self.momentum).add_(self.momentum * global_mean(cos_y, gathered=self.classes.active))
        with torch.no_grad():
            sin_y = (1.0 - cos_y * cos_y).clamp_min(0.0).sqrt()
            threshold = cos_y * math.cos(self.margin) - sin_y * math.sin(self.margin)  # cos(theta_y + m)
        hard = cos > threshold.view(-1, 1)
        reweighted = torch.where(hard, cos * (self.t + cos), cos)
        if cos.shape[1] == 0:
            return self.logit_scale(features) * reweighted
        index = target.clamp_min(0).view(-1, 1)
        margined = self.target_cosine(cos.gather(1, index), features)
        logits = torch.where((target >= 0).view(-1, 1), reweighted.scatter(1, index, margined), reweighted)
        return self.logit_scale(features) * logits

    def scalars(self) -> dict[str, float]:
        return super().scalars() | {"curricular_t": float(self.t)}
