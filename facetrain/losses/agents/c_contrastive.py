"""CContrastiveLoss: contrastive loss against per-class agents, squared normalized distances
(Wang et al. 2017 (NormFace), eq. 10)."""

from __future__ import annotations

import torch

from facetrain.distributed.collectives import sum_over_ranks
from facetrain.losses.agents.agent_loss import AgentLoss
from facetrain.losses.output import LossOutput
from facetrain.sharded.block_softmax import at_target, block_correct, own_mask

__all__ = ["CContrastiveLoss"]


class CContrastiveLoss(AgentLoss):
    """(1/B) sum_i [ d_{i,y_i} + sum_{j != y_i} max(0, m - d_ij) ], d_ij = ||f~_i - W~_j||^2.

    As in the released prototxt, the negatives are summed (not averaged) and there are no 1/2
    factors. Logits for accuracy are -d (the nearest agent wins). Prop. 3's distortion bound is tracked
    as a moving average and logged as `distortion_bound`.

    Args:
        embedding_dim: feature size.
        num_classes: number of training identities (one agent each).
        margin: m (1.0, the paper's recommendation).
        agent_lr_mult, agent_wd_mult: lr and weight-decay multipliers of the agents (released: 1, 0).
    """

    term_name = "c_contrastive"

    def __init__(self, embedding_dim: int, num_classes: int, margin: float = 1.0,
                 agent_lr_mult: float = 1.0, agent_wd_mult: float = 0.0):
        super().__init__(embedding_dim, num_classes, agent_lr_mult, agent_wd_mult)
        self.margin = float(margin)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        if self.classes.active:
            return self._block_forward(features, labels)
        d = self.agent_distances(features)
        own = torch.zeros_like(d, dtype=torch.bool).scatter_(1, labels.view(-1, 1), True)
        per_sample = d[own] + (self.margin - d).clamp_min(0.0).masked_fill(own, 0.0).sum(dim=1)
        loss = per_sample.mean()
        if self.training:
            self.distortion.update(d.detach()[own], labels)
        return LossOutput.classified(loss, {self.term_name: loss.detach()}, -d, labels)

    def _block_forward(self, features: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        """Sharded agents: the own-agent distance and the negatives' hinge sum, each added over the blocks."""
        d, target, labels = self.block_distances(features, labels)
        d_own = sum_over_ranks(at_target(d, target))
        negatives = sum_over_ranks((self.margin - d).clamp_min(0.0).masked_fill(own_mask(d, target), 0.0).sum(dim=1))
        loss = (d_own + negatives).mean()
        if self.training:
            self.distortion.update(d_own.detach(), labels)
        return LossOutput(total=loss, terms={self.term_name: loss.detach()}, correct=block_correct(-d.detach(), target))
