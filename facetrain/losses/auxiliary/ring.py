"""RingLoss: (1/2m) sum_i (||F(x_i)||_2 - R)^2 with a learned radius R (Zheng et al. 2018,
Ring loss; weight lambda in `CombinedLoss`)."""

from __future__ import annotations

import torch
from torch import nn

from facetrain.distributed.collectives import sum_over_ranks
from facetrain.distributed.rank import world_size
from facetrain.errors import FacetrainError
from facetrain.losses.base import FaceLoss
from facetrain.losses.output import LossOutput

__all__ = ["RingLoss"]


class RingLoss(FaceLoss):
    """Soft feature normalization toward a learned radius R; the paper adds lambda times it to softmax.

    Args:
        embedding_dim: feature size (unused; accepted so every loss builds alike).
        num_classes: number of classes (unused).
        radius_init: `auto` (R starts at the first batch's mean feature norm, as the released code
            does; under torchrun the global batch's, the same on every rank) or a positive number.
        radius_lr_mult, radius_wd_mult: lr and weight-decay multipliers of R (released MNIST example: 2, 0).
    """

    term_name = "ring"

    def __init__(self, embedding_dim: int | None = None, num_classes: int | None = None,
                 radius_init: float | str = "auto", radius_lr_mult: float = 2.0, radius_wd_mult: float = 0.0):
        super().__init__()
        auto = isinstance(radius_init, str) and radius_init.strip().lower() == "auto"
        if not auto:
            try:
                radius_init = float(radius_init)
            except (TypeError, ValueError):
                radius_init = -1.0
            if not radius_init > 0:
                raise FacetrainError(f"loss radius_init={radius_init!r} must be `auto` or a positive number")
        self.radius = nn.Parameter(torch.tensor(1.0 if auto else float(radius_init)))
        self.register_buffer("initialized", torch.tensor(not auto))
        self.set_multipliers("radius", radius_lr_mult, radius_wd_mult)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> LossOutput:
        norms = features.float().norm(dim=1)
        if not bool(self.initialized):
            with torch.no_grad():
                self.radius.fill_(float(sum_over_ranks(norms.mean()) / world_size()))  # equal shares per rank
                self.initialized.fill_(True)
        loss = (norms - self.radius).pow(2).sum() / (2 * norms.shape[0])
        return LossOutput(total=loss, terms={self.term_name: loss.detach()})

    def scalars(self) -> dict[str, float]:
        return {"radius": float(self.radius.detach())}
