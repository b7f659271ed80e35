"""insightface's read-offs, reproduced exactly: `.bin` accuracy (verification.py) and `far_readoff=nearest`
(eval_ijbc.py), each against an independent re-derivation here (sklearn's KFold, plain loops), ties included."""

import numpy as np
import pytest
from sklearn.metrics import roc_curve
from sklearn.model_selection import KFold
from sklearn.preprocessing import normalize

from facetrain.errors import FacetrainError
from facetrain.eval.metrics.grid_accuracy import (
    INSIGHTFACE_THRESHOLDS,
    grid_kfold_accuracy,
    squared_distances,
)
from facetrain.eval.metrics.roc import tar_at_far
from facetrain.eval.metrics.verification import kfold_accuracy
from facetrain.eval.protocols.bin import bin_folds, bin_metrics


def _verification_py(emb1, emb2, issame):
    """verification.py's calculate_roc accuracy, re-derived: normalized float64 embeddings, squared distance,
    thresholds arange(0, 4, 0.01), same iff dist < t, KFold(10) unshuffled, the first best training threshold."""
    e1, e2 = normalize(emb1.astype(np.float64)), normalize(emb2.astype(np.float64))
    dist = np.sum(np.square(e1 - e2), 1)
    thresholds = np.arange(0, 4, 0.01)
    accs, chosen = [], []
    for train, test in KFold(n_splits=10, shuffle=False).split(np.arange(len(issame))):
        train_acc = [np.mean(np.less(dist[train], t) == issame[train]) for t in thresholds]
        best = thresholds[int(np.argmax(train_acc))]
        accs.append(np.mean(np.less(dist[test], best) == issame[test]))
        chosen.append(best)
    return np.array(accs), np.array(chosen), dist


def _tied_features(seed, pairs=203):
    """Coarse integer features: many pairs share a distance, some sit exactly on a grid point (0: identical
    sides, 2: orthogonal ones), and many grid thresholds tie on training accuracy."""
    rng = np.random.default_rng(seed)
    same = rng.random(pairs) < 0.5
    left = rng.integers(-2, 3, (pairs, 4)).astype(np.float32)
    right = np.where(same[:, None], left + rng.integers(-1, 2, (pairs, 4)), rng.integers(-2, 3, (pairs, 4)))
    right = right.astype(np.float32)
    left[np.all(left == 0, axis=1)] = 1  # no zero vectors
    right[np.all(right == 0, axis=1)] = 1
    right[:6] = left[:6]  # distance 0
    left[6:10], right[6:10] = [1, 0, 0, 0], [0, 1, 0, 0]  # distance exactly 2.0, a grid point
    return left, right, same


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bin_default_is_verification_py_to_the_pair(seed):
    left, right, same = _tied_features(seed)
    want_accs, want_thrs, dist = _verification_py(left, right, same)
    assert 2.0 in INSIGHTFACE_THRESHOLDS and np.sum(dist == 2.0) >= 4 and np.sum(dist == 0) >= 6  # ties on the grid
    got = grid_kfold_accuracy(squared_distances(left, right), same, bin_folds(len(same)))
    np.testing.assert_array_equal(got.accuracies, want_accs)
    np.testing.assert_array_equal(got.thresholds, want_thrs)
    metrics, _ = bin_metrics("agedb_30", same, left, right)
    assert metrics["bin/agedb_30/acc_mean"] == pytest.approx(want_accs.mean(), abs=1e-15)
    assert metrics["bin/agedb_30/acc_std"] == pytest.approx(want_accs.std(), abs=1e-15)
    assert metrics["bin/agedb_30/threshold_mean"] == pytest.approx(np.mean(1 - want_thrs / 2))


def test_strict_less_and_the_first_best_threshold_matter():
    """Pairs at distance exactly 0.5: `<` calls them different at t = 0.5, same from 0.51 on; the first best is 0.51."""
    e = np.array([[1.0, 0.0]])
    rot = np.array([[np.cos(np.arccos(0.75)), np.sin(np.arccos(0.75))]])  # cosine 0.75: squared distance 0.5
    left, right = np.repeat(e, 40, 0), np.repeat(rot, 40, 0)
    same = np.arange(40) % 2 == 0
    left[1::2], right[1::2] = [1.0, 0.0], [-1.0, 0.0]  # impostors at distance 4
    dist = squared_distances(left, right)
    assert np.allclose(dist[0::2], 0.5)
    got = grid_kfold_accuracy(dist, same, bin_folds(40))
    want_accs, want_thrs, _ = _verification_py(left, right, same)
    np.testing.assert_array_equal(got.thresholds, want_thrs)
    assert got.mean == 1.0 and float(want_thrs[0]) == float(INSIGHTFACE_THRESHOLDS[np.flatnonzero(
        INSIGHTFACE_THRESHOLDS > dist[0])[0]])  # the first grid point above 0.5


def test_exhaustive_is_the_option_and_bad_names_are_refused():
    left, right, same = _tied_features(5, pairs=400)
    scores = np.sum(normalize(left) * normalize(right), 1)
    exhaustive, _ = bin_metrics("lfw", same, left, right, "exhaustive")
    assert exhaustive["bin/lfw/acc_mean"] == kfold_accuracy(scores, same, bin_folds(400)).mean
    with pytest.raises(FacetrainError, match="threshold_search='grid' is not one of insightface, exhaustive"):
        bin_metrics("lfw", same, left, right, "grid")


def _eval_ijbc_nearest(labels, scores, far):
    """eval_ijbc.py's read-off, re-derived: roc_curve, both arrays flipped, the first (gap, index) minimum."""
    fpr, tpr, thr = roc_curve(labels, scores)
    fpr, tpr, thr = np.flipud(fpr), np.flipud(tpr), np.flipud(thr)
    _, i = min(zip(np.abs(fpr - far), range(len(fpr)), strict=True))
    return tpr[i], fpr[i], thr[i]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_nearest_is_eval_ijbc_py_ties_included(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(300) < 0.3
    scores = np.round(rng.normal(labels * 1.2, 1.0), 1)  # rounded: vertical ROC segments (one FPR, two TPRs)
    fars = [1e-3, 1e-2, 0.05, 0.1, 0.3] + list(np.unique(roc_curve(labels, scores)[0])[1:6])  # on-point targets too
    for far in fars:
        point = tar_at_far(labels, scores, far, "nearest")
        assert (point.tar, point.far, point.threshold) == pytest.approx(_eval_ijbc_nearest(labels, scores, far))


def test_nearest_equidistant_points_take_the_later_one():
    """ROC (0, 0), (.25, 0), (.5, 0), (.5, 1), (1, 1): a target of .75 is equally far (exactly, in binary) from the three
    last points. eval_ijbc.py's flipped curve finds (1, 1) first — where roc_curve order's first minimum is
    (.5, 0), TAR 0, and the largest TPR's first point is (.5, 1). The TAR read at a tie is the last point's."""
    labels = np.array([0, 0, 1, 1, 0, 0], bool)
    scores = np.arange(6, 0, -1, dtype=float)
    fpr, tpr, thr = roc_curve(labels, scores)
    assert fpr.tolist() == [0, 0.25, 0.5, 0.5, 1] and tpr.tolist() == [0, 0, 0, 1, 1]
    point = tar_at_far(labels, scores, 0.75, "nearest")
    assert (point.tar, point.far, point.threshold) == _eval_ijbc_nearest(labels, scores, 0.75) == (1.0, 1.0, 1.0)
    first = int(np.argmin(np.abs(fpr - 0.75)))  # unflipped np.argmin: another point, another TAR
    assert (fpr[first], tpr[first]) == (0.5, 0.0)
