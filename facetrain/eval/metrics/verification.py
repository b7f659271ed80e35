"""Pair verification accuracy: the best-accuracy threshold and the k-fold loop of LFW View 2 and YTF."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.svm import SVC

from facetrain.errors import FacetrainError

__all__ = ["CLASSIFIERS", "FoldAccuracy", "best_threshold", "held_out_scores", "kfold_accuracy"]

CLASSIFIERS = ("threshold", "svm")


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
    thresholds: np.ndarray  # [folds]: threshold chosen on the other folds (NaN for the SVM)
    correct: np.ndarray  # bool [P]: whether each pair was decided right by the rule of its own fold

    @property
    def mean(self) -> float:
        return float(self.accuracies.mean())

    @property
    def std(self) -> float:
        """Population std (ddof=0), what facenet/insightface print next to LFW accuracy."""
        return float(self.accuracies.std())


def _fit_rule(scores: np.ndarray, same: np.ndarray, classifier: str
              ) -> tuple[float, Callable[[np.ndarray], np.ndarray]]:
    """(threshold, predict) fitted on training scores; predict maps scores to same/different."""
    if classifier == "svm":  # NormFace compare_feature.m: linear libsvm on the 1-D score
        svm = SVC(kernel="linear", C=1.0).fit(scores[:, None], same)
        return float("nan"), lambda s: svm.predict(s[:, None])
    thr, _ = best_threshold(scores, same)
    return thr, lambda s: s > thr


def _fold_rows(scores: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """[folds, P]: `scores` as seen from each fold ([P] and [1, P] are shared by every fold)."""
    return np.broadcast_to(scores, (len(folds), scores.shape[-1]))


def kfold_accuracy(scores: np.ndarray, same: np.ndarray, fold: np.ndarray, classifier: str = "threshold"
                   ) -> FoldAccuracy:
    """For each fold, fit the decision rule on the other folds and measure accuracy on it.

    Args:
        scores: [P] pair scores (higher = more alike), or [folds, P] with row k the scores as seen from
            the k-th fold of `np.unique(fold)` (they differ when PCA or centring is fitted per fold).
        same: bool [P] labels.
        fold: [P] fold of each pair.
        classifier: `threshold` (the best-accuracy threshold, LFW's rule) or `svm` (a linear SVM on the
            score, NormFace's YTF rule).

    Returns:
        per-fold accuracies and thresholds, and each pair's correctness under its fold's rule.
    """
    if classifier not in CLASSIFIERS:
        raise FacetrainError(f"classifier={classifier!r} is not one of {', '.join(CLASSIFIERS)}")
    folds = np.unique(fold)
    accs, thrs, correct = [], [], np.zeros(len(same), dtype=bool)
    for row, f in zip(_fold_rows(scores, folds), folds, strict=True):
        test = fold == f
        thr, predict = _fit_rule(row[~test], same[~test], classifier)
        correct[test] = predict(row[test]) == same[test]
        accs.append(correct[test].mean())
        thrs.append(thr)
    return FoldAccuracy(np.array(accs), np.array(thrs), correct)


def held_out_scores(scores: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """[P]: each pair's score as seen from its own fold (what the ROC, AUC and EER pool)."""
    folds = np.unique(fold)
    return _fold_rows(scores, folds)[np.searchsorted(folds, fold), np.arange(len(fold))]
