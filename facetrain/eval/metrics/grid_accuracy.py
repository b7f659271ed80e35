"""insightface's `.bin` accuracy rule (`recognition/arcface_torch/eval/verification.py`), reproduced exactly.

The numbers the field puts side by side for LFW, CFP-FP, AgeDB-30, CALFW and CPLFW come from this rule, so
facetrain's `.bin` default follows it to the pair: squared L2 distance of the L2-normalized (float64)
embeddings, a grid of thresholds `np.arange(0, 4, 0.01)`, "same" iff distance < threshold (strict), and per
test fold the FIRST grid threshold with the best accuracy on the other folds (`np.argmax`). The exhaustive
search of `verification.best_threshold` can pick a threshold between two grid points, so it can differ by a
pair or so per fold.
"""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import normalize

from facetrain.eval.metrics.verification import FoldAccuracy

__all__ = ["INSIGHTFACE_THRESHOLDS", "grid_accuracies", "grid_kfold_accuracy", "squared_distances"]

INSIGHTFACE_THRESHOLDS = np.arange(0, 4, 0.01)  # verification.py's `evaluate`: 400 squared distances


def squared_distances(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """[P] ||a/|a| - b/|b|||² in float64, as insightface computes it (sklearn `normalize`, then the squared sum)."""
    a = normalize(np.asarray(left, dtype=np.float64))
    b = normalize(np.asarray(right, dtype=np.float64))
    return np.sum(np.square(a - b), axis=1)


def grid_accuracies(dist: np.ndarray, same: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """[T] pairs decided right by `same iff dist < t` for each t (counts, so equal accuracies compare equal)."""
    same = np.asarray(same, dtype=bool)
    genuine, impostor = np.sort(dist[same]), np.sort(dist[~same])
    accepted_genuine = np.searchsorted(genuine, thresholds, side="left")  # how many lie strictly below t
    rejected_impostor = len(impostor) - np.searchsorted(impostor, thresholds, side="left")
    return accepted_genuine + rejected_impostor


def grid_kfold_accuracy(dist: np.ndarray, same: np.ndarray, fold: np.ndarray,
                        thresholds: np.ndarray = INSIGHTFACE_THRESHOLDS) -> FoldAccuracy:
    """For each fold, the first best grid threshold of the other folds applied to it.

    Args:
        dist: [P] squared distances (`squared_distances`).
        same: bool [P] labels.
        fold: [P] fold of each pair (insightface: `KFold(10, shuffle=False)`, i.e. `bin.bin_folds`).
        thresholds: the grid, in increasing order.

    Returns:
        per-fold accuracies, the chosen thresholds (squared distances) and each pair's correctness.
    """
    same = np.asarray(same, dtype=bool)
    accs, thrs, correct = [], [], np.zeros(len(same), dtype=bool)
    for f in np.unique(fold):
        test = fold == f
        thr = thresholds[int(np.argmax(grid_accuracies(dist[~test], same[~test], thresholds)))]
        correct[test] = (dist[test] < thr) == same[test]
        accs.append(correct[test].mean())
        thrs.append(thr)
    return FoldAccuracy(np.array(accs), np.array(thrs, dtype=np.float64), correct)
