"""AgentLoss: the shared base of NormFace's agent losses C-contrastive and C-triplet (Wang et al. 2017, §4, prop. 3)."""

from __future__ import annotations

import torch

from facetrain.losses.agents.agent_distortion import AgentDistortion
from facetrain.losses.base import FaceLoss
from facetrain.losses.class_agents import squared_agent_distances, unit_ball_agents
from facetrain.sharded.block_softmax import gather_batch
from facetrain.sharded.shards import ClassShard

__all__ = ["AgentLoss"]


class AgentLoss(FaceLoss):
    """One learned unit-norm agent per class, compared with the features by squared normalized distance.

    Holds what C-contrastive and C-triplet share: the agents and their lr / weight-decay multipliers, and
    prop. 3's distortion bound (a moving average, logged as `distortion_bound`). Subclasses turn the
    distances into their loss; accuracy takes the nearest agent as the prediction. With
    `shard_classifier=true` each rank holds a block of the agents (no class sampling) and the
    subclasses reduce their sums over the blocks.

    Args:
        embedding_dim: feature size.
        num_classes: number of training identities (one agent each).
        agent_lr_mult: lr multiplier of the agents.
        agent_wd_mult: weight-decay multiplier of the agents.
    """

    class_weight_names = ("agents",)

    def __init__(self, embedding_dim: int, num_classes: int, agent_lr_mult: float, agent_wd_mult: float):
        super().__init__()
        self.agents = unit_ball_agents(num_classes, embedding_dim)
        self.classes = ClassShard(num_classes)
        self.distortion = AgentDistortion()
        self.set_multipliers("agents", agent_lr_mult, agent_wd_mult)

    def agent_distances(self, features: torch.Tensor) -> torch.Tensor:
        """[B, C] d_ij = ||f~_i - W~_j||^2, in the agents' precision (fp32; the features may come from autocast)."""
        return squared_agent_distances(features.to(self.agents.dtype), self.agents)

    def block_distances(self, features: torch.Tensor, labels: torch.Tensor):
        """(d, target, labels) of the gathered batch: [B, c] distances to this rank's agents, each sample's
        class as a column of the block (-1 elsewhere), and the global batch's labels."""
        features, labels = gather_batch(features.to(self.agents.dtype), labels)
        _, target = self.classes.select(labels)
        return squared_agent_distances(features, self.agents), target, labels

    def scalars(self) -> dict[str, float]:
        return {"distortion_bound": float(self.distortion.value)}
