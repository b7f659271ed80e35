"""Running averages of the training signals, written to the tqdm bar and TensorBoard."""

from __future__ import annotations

from collections import defaultdict

import torch

__all__ = ["RunningMeans", "batch_stats"]


class RunningMeans:
    """Sums of named scalars since the last `pop()`.

    Tensors are summed where they live, so a CUDA run syncs with the host only when `pop()` reads
    the means (every `log_every` iterations), not on every step.
    """

    def __init__(self):
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = defaultdict(int)

    def add(self, values: dict[str, torch.Tensor | float]) -> None:
        for key, value in values.items():
            value = torch.as_tensor(value).detach().double()
            self._sums[key] = self._sums[key] + value if key in self._sums else value
            self._counts[key] += 1

    def pop(self) -> dict[str, float]:
        means = {k: float(self._sums[k]) / self._counts[k] for k in self._sums}
        self._sums.clear()
        self._counts.clear()
        return means


@torch.no_grad()
def batch_stats(out, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Loss terms, accuracy and embedding-norm statistics of one batch (as tensors: no device sync)."""
    norms = embeddings.detach().float().norm(dim=1)
    stats = {"loss": out.total.detach(), "feat_norm_mean": norms.mean(), "feat_norm_std": norms.std()}
    stats |= {f"loss/{name}": value for name, value in out.terms.items()}
    if out.correct is not None:  # counted by the loss: a sharded classifier has no full [B, C] logits
        stats["acc"] = out.correct.float() / labels.numel()
    return stats
