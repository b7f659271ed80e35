"""MarginSoftmaxLoss: softmax over scaled cosines to normalized class weights, with a target-class margin hook.

The shared base of NormFace (normface.md eq. 6, no margin), CosFace, ArcFace and A-Softmax: each
subclass changes only the scale (`_scale`) and the target logit (`_target_cosine`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facetrain.losses.agents import unit_ball_agents
from facetrain.losses.output import LossOutput

__all__ = ["MarginSoftmaxLoss"]


class MarginSoftmaxLoss(nn.Module):
    """Cross-entropy over s * cos(theta_j), the target's cosine replaced by a margin function of it.

    Args:
        embedding_dim: feature size.
        num_classes: number of training identities.
        scale: s, the radius the cosines are multiplied by.
        learn_scale: learn s by back-propagation (NormFace's choice) instead of fixing it.
        min_scale: s is clamped to at least this in the forward pass (NormFace's released `min_value`).
        weight_lr_mult, weight_wd_mult: learning-rate and weight-decay multipliers of the class weights.
        scale_lr_mult, scale_wd_mult: the same for s (when learned).
    """

    term_name = "margin_softmax"

    def __init__(self, embedding_dim: int, num_classes: int, scale: float = 64.0, learn_scale: bool = False,
                 min_scale: float = 0.01, weight_lr_mult: float = 1.0, weight_wd_mult: float = 1.0,
                 scale_lr_mult: float = 1.0, scale_wd_mult: float = 1.0):
        super().__init__()
        self.weight = unit_ball_agents(num_classes, embedding_dim)
        value = torch.tensor(float(scale))
        if learn_scale:
            self.scale = nn.Parameter(value)
        else:
            self.register_buffer("scale", value)
        self.min_scale = float(min_scale)
        self._multipliers = {"weight": (float(weight_lr_mult), float(weight_wd_mult)),
                             "scale": (float(scale_lr_mult), float(scale_wd_mult))}

    def _similarities(self, features: torch.Tensor) -> torch.Tensor:
        """[B, C] cos(theta_j) between each feature and each class weight."""
        return F.normalize(features, dim=1) @ F.normalize(self.weight, dim=1).T

    def _scale(self, features: torch.Tensor) -> torch.Tensor:
        """The factor the similarities are multiplied by: s (a scalar) here; A-Softmax uses ||x||."""
        return self.scale.clamp(min=self.min_scale)

    def _target_cosine(self, cos_y: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """The margin function applied to the target class's cosine ([B, 1]); none in the base."""
        return cos_y

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        features = features.to(self.weight.dtype)  # fp32 under AMP: cosines near 1 need the precision
        cos = self._similarities(features)
        scale = self._scale(features)
        index = labels.view(-1, 1)
        target = self._target_cosine(cos.gather(1, index), features)
        logits = scale * cos.scatter(1, index, target)
        loss = F.cross_entropy(logits, labels)
        # accuracy from the margin-free logits: that is the decision rule at test time
        return LossOutput(total=loss, terms={self.term_name: loss.detach()}, logits=(scale * cos).detach())

    def param_multipliers(self) -> dict[str, tuple[float, float]]:
        """(lr multiplier, weight-decay multiplier) for this module's own parameters, by name."""
        return {name: mult for name, mult in self._multipliers.items()
                if isinstance(getattr(self, name, None), nn.Parameter)}

    def scalars(self) -> dict[str, float]:
        return {"s": float(self._scale_value())} if isinstance(self.scale, nn.Parameter) else {}

    def _scale_value(self) -> float:
        return float(self.scale.detach().clamp(min=self.min_scale))
