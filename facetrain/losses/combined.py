"""CombinedLoss: a weighted sum of losses, each term logged on its own (e.g. softmax + 0.003 * center)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from hydra.utils import instantiate
from torch import nn

from facetrain.errors import FacetrainError
from facetrain.losses.output import LossOutput

__all__ = ["CombinedLoss"]


class CombinedLoss(nn.Module):
    """total = sum_name weight_name * loss_name(features, labels).

    Built by Hydra with `_recursive_: false`; each term's `loss` config is instantiated here with the
    embedding size and class count, like a top-level loss. Logged terms are the unweighted values,
    named after the term (its extra parts as `<name>_<part>`); logits come from the first
    term that has them; scalars are prefixed with the term's name.

    Args:
        embedding_dim: feature size.
        num_classes: number of training identities.
        terms: name -> {weight: float, loss: a loss config with `_target_`}.
    """

    def __init__(self, embedding_dim: int, num_classes: int, terms: Mapping):
        super().__init__()
        if not terms:
            raise FacetrainError("loss.terms is empty; list at least one {weight, loss} entry")
        self.weights: dict[str, float] = {}
        losses = {}
        for name, spec in terms.items():
            if "loss" not in spec:
                raise FacetrainError(f"loss.terms.{name} needs a `loss:` config (with _target_) and a `weight:`")
            self.weights[name] = float(spec.get("weight", 1.0))
            losses[name] = instantiate(spec["loss"], embedding_dim=embedding_dim, num_classes=num_classes)
        self.terms = nn.ModuleDict(losses)
        needs = [int(getattr(loss, "samples_per_identity", 0) or 0) for loss in losses.values()]
        if max(needs) > 0:
            self.samples_per_identity = max(needs)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        total, terms, logits = 0.0, {}, None
        for name, loss in self.terms.items():
            out = loss(features, labels)
            total = total + self.weights[name] * out.total
            own = next(iter(out.terms)) if len(out.terms) == 1 else getattr(loss, "term_name", None)
            terms |= {name if part == own else f"{name}_{part}": value for part, value in out.terms.items()}
            if logits is None:
                logits = out.logits
        return LossOutput(total=total, terms=terms, logits=logits)

    def scalars(self) -> dict[str, float]:
        return {f"{name}_{k}": v for name, loss in self.terms.items() for k, v in loss.scalars().items()}
