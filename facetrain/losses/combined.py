"""CombinedLoss: a weighted sum of losses, each term logged on its own (e.g. softmax + 0.003 * center)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from facetrain.errors import FacetrainError
from facetrain.losses.base import FaceLoss
from facetrain.losses.output import LossOutput

__all__ = ["CombinedLoss"]


class CombinedLoss(FaceLoss):
    """total = sum_name weight_name * loss_name(features, labels).

    Each term's `loss` is a factory that this class completes with the embedding size and class count,
    like a top-level loss: in a config, a loss node with `_partial_: true`, which Hydra's recursive
    instantiate turns into a `functools.partial`; in Python, a loss class or partial (or a built loss).
    Logged terms are the unweighted values, named after the term (its extra parts as `<name>_<part>`);
    `correct` and logits come from the first term that has them; scalars are prefixed with the term's name.
    The P x K batch size asked for is the largest of the terms'.

    Args:
        embedding_dim: feature size.
        num_classes: number of training identities.
        terms: name -> {weight: float (1 if absent), loss: a callable (embedding_dim=, num_classes=) ->
            FaceLoss, or a FaceLoss}.
    """

    def __init__(self, embedding_dim: int, num_classes: int, terms: Mapping):
        super().__init__()
        if not terms:
            raise FacetrainError("loss.terms is empty; list at least one {weight, loss} entry")
        self.weights = {name: float(spec.get("weight", 1.0)) for name, spec in terms.items()}
        self.terms = nn.ModuleDict({name: _build_term(name, spec.get("loss"), embedding_dim, num_classes)
                                    for name, spec in terms.items()})
        self.samples_per_identity = max(loss.samples_per_identity for loss in self.terms.values())

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        total, terms, logits, correct = 0.0, {}, None, None
        for name, loss in self.terms.items():
            out = loss(features, labels)
            total = total + self.weights[name] * out.total
            own = next(iter(out.terms)) if len(out.terms) == 1 else loss.term_name
            terms |= {name if part == own else f"{name}_{part}": value for part, value in out.terms.items()}
            logits = out.logits if logits is None else logits
            correct = out.correct if correct is None else correct
        return LossOutput(total=total, terms=terms, logits=logits, correct=correct)

    def scalars(self) -> dict[str, float]:
        return {f"{name}_{k}": v for name, loss in self.terms.items() for k, v in loss.scalars().items()}


def _build_term(name: str, make, embedding_dim: int, num_classes: int) -> FaceLoss:
    """The term's loss from its factory; a FacetrainError naming the fix for a missing or unbuilt one."""
    fix = f"give loss.terms.{name} a `loss:` node with `_target_: facetrain.losses.<Loss>` and `_partial_: true`"
    if make is None:
        raise FacetrainError(f"loss.terms.{name} has no `loss`; {fix} (and a `weight:`)")
    if isinstance(make, FaceLoss):
        return make
    if not callable(make):  # a config node: the term was not instantiated (e.g. `_recursive_: false`)
        raise FacetrainError(f"loss.terms.{name}.loss is a config, not a loss factory; drop `_recursive_: false` "
                             f"from the loss config and {fix}")
    loss = make(embedding_dim=embedding_dim, num_classes=num_classes)
    if not isinstance(loss, FaceLoss):
        raise FacetrainError(f"loss.terms.{name}.loss built a {type(loss).__name__}, not a facetrain loss; {fix}")
    return loss
