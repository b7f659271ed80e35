"""Pearson's r and Spearman's rho for the analysis plots' notes (numpy only; ties get their mean rank)."""

from __future__ import annotations

import numpy as np

__all__ = ["pearson", "spearman"]


def pearson(x, y) -> float:
    """Pearson's r, NaN when either side is constant (a weight-normalized run's norms may all be equal)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def spearman(x, y) -> float:
    """Spearman's rho: Pearson's r of the ranks."""
    return pearson(_ranks(x), _ranks(y))


def _ranks(v) -> np.ndarray:
    v = np.asarray(v, float)
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(len(v), dtype=float)
    values, counts = np.unique(v, return_counts=True)
    for value in values[counts > 1]:  # tied values share their mean rank
        ranks[v == value] = ranks[v == value].mean()
    return ranks
