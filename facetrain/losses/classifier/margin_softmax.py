"""MarginSoftmaxLoss: softmax over scaled cosines to normalized class weights, with a target-class margin hook.

The shared base of NormFace (Wang et al. 2017, eq. 6, no margin), CosFace, ArcFace and A-Softmax: each
subclass changes only the scale (`logit_scale`) and the target's cosine (`target_cosine`). The hooks act on
any block of classes, so a model-parallel classifier holding a shard of the class weights reuses them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facetrain.losses.base import FaceLoss, class_matmul
from facetrain.losses.class_agents import unit_ball_agents
from facetrain.losses.output import LossOutput
from facetrain.sharded.block_softmax import block_forward
from facetrain.sharded.chunked import chunked_rows
from facetrain.sharded.shards import ClassShard

__all__ = ["MarginSoftmaxLoss"]


class MarginSoftmaxLoss(FaceLoss):
    """Cross-entropy over s * cos(theta_j), the target's cosine replaced by a margin function of it.

    Args:
        embedding_dim: feature size.
        num_classes: number of training identities.
        scale: s, the radius the cosines are multiplied by.
        learn_scale: learn s by back-propagation (NormFace's choice) instead of fixing it.
        min_scale: s is clamped to at least this in the forward pass (NormFace's released `min_value`).
        weight_lr_mult, weight_wd_mult: learning-rate and weight-decay multipliers of the class weights.
        scale_lr_mult, scale_wd_mult: the same for s (when learned).
        sample_rate: the share of the classes each batch's softmax uses (Partial FC; 1 = all).
    """

    term_name = "margin_softmax"
    class_weight_names = ("weight",)

    def __init__(self, embedding_dim: int, num_classes: int, scale: float = 64.0, learn_scale: bool = False,
                 min_scale: float = 0.01, weight_lr_mult: float = 1.0, weight_wd_mult: float = 1.0,
                 scale_lr_mult: float = 1.0, scale_wd_mult: float = 1.0, sample_rate: float = 1.0):
        super().__init__()
        self.weight = self.initial_weight(num_classes, embedding_dim)
        self.classes = ClassShard(num_classes, sample_rate)
        value = torch.tensor(float(scale))
        if learn_scale:
            self.scale = nn.Parameter(value)
        else:
            self.register_buffer("scale", value)
        self.min_scale = float(min_scale)
        self.set_multipliers("weight", weight_lr_mult, weight_wd_mult)
        self.set_multipliers("scale", scale_lr_mult, scale_wd_mult)

    def initial_weight(self, num_classes: int, embedding_dim: int) -> nn.Parameter:
        """The class weights at initialization, one row per class: [C, D] unit rows here (sub-center ArcFace
        holds [C, K, D]); drawn block by block of rows, so a rank of a sharded classifier draws only its own."""
        return unit_ball_agents(num_classes, embedding_dim)

    def class_similarities(self, features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """cos(theta_j) between each feature and each given class weight (all classes, or one shard of them).

        Args:
            features: [B, D] features.
            weight: [c, D] class weights, e.g. `self.weight` or the rows one rank holds.

        Returns:
            [B, c] similarities (cosines here; NormFace's ablations leave one side un-normalized).
        """
        return class_matmul(F.normalize(features, dim=1), F.normalize(weight, dim=1), self.matmul_dtype)

    def logit_scale(self, features: torch.Tensor) -> torch.Tensor:
        """The factor the similarities are multiplied by.

        Args:
            features: [B, D] features.

        Returns:
            s clamped to `min_scale` (0-dim) here; A-Softmax returns ||x|| ([B, 1]).
        """
        return self.scale.clamp(min=self.min_scale)

    def target_cosine(self, cos_y: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """The margin function: what replaces the target class's cosine before scaling (none in the base).

        Args:
            cos_y: [B, 1] each sample's cosine to its own class.
            features: [B, D] features.

        Returns:
            [B, 1] the target similarity with the margin applied.
        """
        return cos_y

    def margin_logits(self, cos: torch.Tensor, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The logits cross-entropy sees for a block of classes: scale * cos, the margin at each target.

        The block is every class or one rank's shard of them; a sample whose class lies in another shard
        gets no margin here. Concatenating the blocks of a split gives the full loss's logits.

        Args:
            cos: [B, c] similarities to the block's classes (`class_similarities`).
            features: [B, D] features (A-Softmax scales by their norm).
            target: [B] each sample's class as a column of this block, or -1 where it is outside the block.

        Returns:
            [B, c] logits.
        """
        if cos.shape[1] == 0:  # a block left without classes by class sampling
            return self.logit_scale(features) * cos
        index = target.clamp_min(0).view(-1, 1)
        cos_y = cos.gather(1, index)
        margined = torch.where((target >= 0).view(-1, 1), self.target_cosine(cos_y, features), cos_y)
        return self.logit_scale(features) * cos.scatter(1, index, margined)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        features = features.to(self.weight.dtype)  # fp32: the margins and softmax; the matmul in matmul_dtype
        if self.classes.active:
            loss, correct = block_forward(self.classes, self._block_logits, features, labels)
            return LossOutput(total=loss, terms={self.term_name: loss.detach()}, correct=correct)
        cos = self.class_similarities(features, self.weight)
        loss = F.cross_entropy(self.margin_logits(cos, features, labels), labels)
        # accuracy from the margin-free logits: that is the decision rule at test time
        decision = self.logit_scale(features) * cos
        return LossOutput.classified(loss, {self.term_name: loss.detach()}, decision, labels)

    def _block_logits(self, features: torch.Tensor, rows: torch.Tensor | None, target: torch.Tensor):
        """(margin logits, margin-free scores) of the block's (sampled) classes for the gathered batch; the
        cosines chunk by chunk of classes, so no normalized copy of the block is held (`chunked_rows`)."""
        cos = chunked_rows(self.class_similarities, features, (self.weight,), rows)
        return self.margin_logits(cos, features, target), self.logit_scale(features) * cos

    def scalars(self) -> dict[str, float]:
        return {"s": float(self._scale_value())} if isinstance(self.scale, nn.Parameter) else {}

    def _scale_value(self) -> float:
        return float(self.scale.detach().clamp(min=self.min_scale))
