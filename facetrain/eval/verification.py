"""Pair verification scoring: cosine scores and the k-fold best-threshold accuracy of LFW View 2."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FoldAccuracy", "best_threshold", "cosine_scores", "kfold_accuracy"]


def cosine_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two [P, D] arrays."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.einsum("pd,pd->p", a, b)


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold with the highest accuracy for the rule `same iff score > threshold`.

    Every distinct operating point is tried (no grid): thresholds lie midway between consecutive
    distinct scores, or just outside the range. Ties go to the lowest such threshold.
    Returns (threshold, accuracy on these scores).
    """
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], same[order].astype(bool)
    n = len(s)
    # threshold below position k: pairs 0..k-1 are called different, k..n-1 the same
    correct = np.concatenate([[0], np.cumsum(~y)]) + (y.sum() - np.concatenate([[0], np.cumsum(y)]))
    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = s[1:] > s[:-1]
    k = int(np.argmax(np.where(valid, correct, -1)))
    if k == 0:
        thr = s[0] - 1e-6
    elif k == n:
        thr = s[-1] + 1e-6
    else:
        thr = (s[k - 1] + s[k]) / 2
    return float(thr), float(correct[k] / n)


@dataclass(frozen=True)
class FoldAccuracy:
    accuracies: np.ndarray  # [folds]: accuracy on each held-out fold
    thresholds: np.ndarray  # [folds]: threshold chosen on the other folds

    @property
    def mean(self) -> float:
        return float(self.accuracies.mean())

    @property
    def std(self) -> float:
        """Population std (ddof=0), what facenet/insightface print next to LFW accuracy."""
        return float(self.accuracies.std())


def kfold_accuracy(scores: np.ndarray, same: np.ndarray, fold: np.ndarray) -> FoldAccuracy:
    """For each fold, pick the threshold on the other folds and measure accuracy on it."""
    accs, thrs = [], []
    for f in np.unique(fold):
        test = fold == f
        thr, _ = best_threshold(scores[~test], same[~test])
        accs.append(np.mean((scores[test] > thr) == same[test]))
        thrs.append(thr)
    return FoldAccuracy(np.array(accs), np.array(thrs))
