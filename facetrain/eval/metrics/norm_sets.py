"""Feature norm vs. quality (Ranjan et al. 2017, fig. 1a): split items into norm quantile sets, score each pair of sets."""

from __future__ import annotations

import numpy as np

from facetrain.errors import FacetrainError

__all__ = ["kept_after_rejecting", "norm_set_pairs", "norm_sets"]


def norm_sets(norms: np.ndarray, n: int) -> np.ndarray:
    """Set index 1..n of each item: 1 = the lowest-norm n-quantile (terciles for n = 3), n = the highest."""
    if n < 2:
        raise FacetrainError(f"analysis.norm_sets={n} must be 0 (off) or at least 2")
    edges = np.quantile(norms, np.linspace(0, 1, n + 1)[1:-1])
    return 1 + np.searchsorted(edges, norms, side="right")


def norm_set_pairs(set_a: np.ndarray, set_b: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Masks of the pairs whose two sides fall in sets x and y (x <= y), keyed `x-y` as in fig. 1a."""
    lo, hi = np.minimum(set_a, set_b), np.maximum(set_a, set_b)
    return {f"{x}-{y}": (lo == x) & (hi == y) for x in range(1, n + 1) for y in range(x, n + 1)}


def kept_after_rejecting(quality: np.ndarray, fractions) -> dict[str, np.ndarray]:
    """Masks of the pairs kept when the lowest-quality share `fraction` of them is rejected, keyed `f"{fraction:g}"`:
    the points of an error-versus-reject curve (Meng et al. 2021, MagFace's quality evaluation; a pair's quality is
    the lower of its two images' feature norms). Exactly floor(fraction x P) pairs go, the lowest first (ties: in
    pair order)."""
    order = np.argsort(quality, kind="stable")
    out = {}
    for fraction in fractions:
        f = float(fraction)
        if not 0 <= f < 1:
            raise FacetrainError(f"analysis.reject={list(fractions)}: each share of pairs to reject must be in [0, 1)")
        keep = np.ones(len(quality), dtype=bool)
        keep[order[:int(np.floor(f * len(quality)))]] = False
        out[f"{f:g}"] = keep
    return out
