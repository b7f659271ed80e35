"""Pair scores on normalized features: cosine, or minus the Euclidean distance; optional per-fold PCA (NormFace §5.1)."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from facetrain.errors import FacetrainError

__all__ = ["METRICS", "fold_pca_scores", "l2_normalize", "make_pca", "pair_scores"]

METRICS = ("cosine", "euclidean")


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, in x's own dtype (a zero row stays zero rather than NaN)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def pair_scores(a: np.ndarray, b: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Row-wise scores of two [P, D] arrays, in float64; higher = more alike.

    Args:
        a, b: the two sides of each pair.
        metric: `cosine`, or `euclidean` = -||a/|a| - b/|b|||, a monotone map of cosine (same ranking).

    Returns:
        [P] scores.
    """
    if metric not in METRICS:
        raise FacetrainError(f"metric={metric!r} is not one of {', '.join(METRICS)}")
    a, b = l2_normalize(a.astype(np.float64)), l2_normalize(b.astype(np.float64))
    if metric == "cosine":
        return np.einsum("pd,pd->p", a, b)
    return -np.linalg.norm(a - b, axis=1)


def make_pca(n: float) -> PCA:
    """PCA keeping `n` components (n >= 1) or the fewest explaining more than fraction n of the variance."""
    if n >= 1:
        return PCA(n_components=int(n))
    if 0 < n < 1:  # keep the fewest components explaining more than this fraction (lfwPCA.m: 0.995)
        return PCA(n_components=float(n), svd_solver="full")
    raise FacetrainError(f"pca={n} must be 0 (off), a number of components >= 1, or a variance fraction in (0, 1)")


def fold_pca_scores(left: np.ndarray, right: np.ndarray, fold: np.ndarray, pca: float, metric: str = "cosine"
                    ) -> np.ndarray:
    """[folds, P] scores: row f uses a PCA fitted on the pairs outside fold f (both sides stacked).

    Features are L2-normalized first; PCA centres on the training mean (as pdollar's `pca` in lfwPCA.m
    and scikit-learn do), then both sides are projected and scored on normalized projections.
    """
    left, right = l2_normalize(left.astype(np.float64)), l2_normalize(right.astype(np.float64))
    rows = []
    for f in np.unique(fold):
        train = fold != f
        model = make_pca(pca).fit(np.concatenate([left[train], right[train]]))
        rows.append(pair_scores(model.transform(left), model.transform(right), metric))
    return np.stack(rows)
