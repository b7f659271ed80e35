"""LossOutput: what every loss returns (the one contract between losses and the trainer)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["LossOutput"]


@dataclass
class LossOutput:
    """What one batch gives the trainer.

    `total` is the scalar to minimise and `terms` each named part (for logging). `correct` counts the
    batch's right top-1 predictions, as a 0-dim tensor on the features' device (no host sync), or is None
    for a loss with no classifier (contrastive, triplet, center); training accuracy is correct / batch size.
    `logits`, the full [B, C] decision scores, is kept for callers that still compute accuracy from it; a
    sharded classifier will leave it None.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    logits: torch.Tensor | None = None
    correct: torch.Tensor | None = None

    @classmethod
    def classified(cls, total: torch.Tensor, terms: dict[str, torch.Tensor], scores: torch.Tensor,
                   labels: torch.Tensor) -> LossOutput:
        """The output of a loss with a classifier, its accuracy judged by `scores`.

        Args:
            total: the scalar to minimise.
            terms: the named parts, for logging.
            scores: [B, C] the test-time decision scores (margin-free logits, or minus agent distances):
                the highest one is the prediction.
            labels: [B] the true classes.

        Returns:
            A LossOutput with `logits` (the detached scores) and `correct` filled.
        """
        scores = scores.detach()
        return cls(total=total, terms=terms, logits=scores, correct=(scores.argmax(dim=1) == labels).sum())
