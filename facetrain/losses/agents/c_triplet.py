"""CTripletLoss: triplet loss against per-class agents, max(0, m + d_{i,y} - d_{i,k})
(Wang et al. 2017 (NormFace), eq. 11)."""

from __future__ import annotations

import torch

from facetrain.distributed.collectives import max_over_ranks, shared_sum_over_ranks, sum_over_ranks
from facetrain.errors import FacetrainError
from facetrain.losses.agents.agent_loss import AgentLoss
from facetrain.losses.output import LossOutput
from facetrain.sharded.block_softmax import at_target, block_correct, own_mask, row_max

__all__ = ["CTripletLoss"]

_NEGATIVES = ("hardest", "all")


class CTripletLoss(AgentLoss):
    """C-triplet on squared normalized distances to agents; optionally "C-triplet + center".

    Args:
        embedding_dim: feature size.
        num_classes: number of training identities (one agent each).
        margin: m (0.8, the paper's recommendation).
        negatives: `hardest` (per sample, the nearest wrong agent — the released `hardest_only`) or
            `all` (the mean hinge over every wrong agent).
        pull_weight: weight of the "+ center" term of table 2, mean_i d_{i,y_i}, which keeps pulling
            a feature toward its agent even when the triplet is satisfied (0 = plain C-triplet).
        agent_lr_mult, agent_wd_mult: lr and weight-decay multipliers of the agents (released: 1, 0).
    """

    term_name = "c_triplet"

    def __init__(self, embedding_dim: int, num_classes: int, margin: float = 0.8, negatives: str = "hardest",
                 pull_weight: float = 0.0, agent_lr_mult: float = 1.0, agent_wd_mult: float = 0.0):
        if negatives not in _NEGATIVES:
            raise FacetrainError(f"loss.negatives={negatives!r} is not one of {', '.join(_NEGATIVES)}")
        super().__init__(embedding_dim, num_classes, agent_lr_mult, agent_wd_mult)
        self.margin, self.negatives, self.pull_weight = float(margin), negatives, float(pull_weight)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        if self.classes.active:
            return self._block_forward(features, labels)
        d = self.agent_distances(features)
        d_own = d.gather(1, labels.view(-1, 1))
        own = torch.zeros_like(d, dtype=torch.bool).scatter_(1, labels.view(-1, 1), True)
        hinge = (self.margin + d_own - d).clamp_min(0.0).masked_fill(own, 0.0)
        if self.negatives == "hardest":
            nearest_wrong = d.detach().masked_fill(own, float("inf")).argmin(dim=1, keepdim=True)
            triplet = hinge.gather(1, nearest_wrong).mean()
        else:
            triplet = hinge.sum(dim=1).mean() / max(d.shape[1] - 1, 1)
        pull = d_own.mean()
        if self.training:
            self.distortion.update(d_own.detach().squeeze(1), labels)
        return LossOutput.classified(triplet + self.pull_weight * pull, self._terms(triplet, pull), -d, labels)

    def _terms(self, triplet: torch.Tensor, pull: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = {self.term_name: triplet.detach()}
        if self.pull_weight:
            terms["agent_pull"] = pull.detach()
        return terms

    def _block_forward(self, features: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        """Sharded agents. `hardest`: the nearest wrong agent over all blocks, its distance summed in from
        the block that holds it; `all`: each block's hinge sum, with the own distance shared so that its
        gradient collects every block's hinges."""
        d, target, labels = self.block_distances(features, labels)
        own, d_own_local = own_mask(d, target), at_target(d, target)
        d_own = sum_over_ranks(d_own_local)
        if self.negatives == "hardest":
            local = -row_max(-d.masked_fill(own, float("inf")))  # each row's nearest wrong agent in this block
            nearest = -max_over_ranks(-local.detach())
            holds = torch.isfinite(local) & (local.detach() == nearest)
            triplet = (self.margin + d_own - sum_over_ranks(torch.where(holds, local, 0.0))).clamp_min(0.0).mean()
        else:
            shared = shared_sum_over_ranks(d_own_local)[:, None]
            hinge = (self.margin + shared - d).clamp_min(0.0).masked_fill(own, 0.0).sum(dim=1)
            triplet = sum_over_ranks(hinge).mean() / max(self.classes.num_classes - 1, 1)
        pull = d_own.mean()
        if self.training:
            self.distortion.update(d_own.detach(), labels)
        correct = block_correct(-d.detach(), target)
        return LossOutput(total=triplet + self.pull_weight * pull, terms=self._terms(triplet, pull), correct=correct)
