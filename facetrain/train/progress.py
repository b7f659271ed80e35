"""Running averages of the training signals, written to the tqdm bar and TensorBoard."""

from __future__ import annotations

from collections import defaultdict

import torch

__all__ = ["RunningMeans", "batch_stats"]


class RunningMeans:
    """Sums of named scalars since the last `pop()`."""

    def __init__(self):
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)

    def add(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self._sums[key] += float(value)
            self._counts[key] += 1

    def pop(self) -> dict[str, float]:
        means = {k: self._sums[k] / self._counts[k] for k in self._sums}
        self._sums.clear()
        self._counts.clear()
        return means


@torch.no_grad()
def batch_stats(out, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Loss terms, accuracy and embedding-norm statistics of one batch (as tensors: no device sync)."""
    norms = embeddings.detach().float().norm(dim=1)
    stats = {"loss": out.total.detach(), "feat_norm_mean": norms.mean(), "feat_norm_std": norms.std()}
    stats |= {f"loss/{name}": value for name, value in out.terms.items()}
    if out.logits is not None:
        stats["acc"] = (out.logits.argmax(dim=1) == labels).float().mean()
    return stats
