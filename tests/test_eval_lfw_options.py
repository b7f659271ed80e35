"""LFW options: per-fold PCA (NormFace §5.1) and the Euclidean score, against plain scikit-learn computations."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from facetrain.eval.features.file import Features
from facetrain.eval.metrics.pair_scoring import fold_pca_scores, pair_scores
from facetrain.eval.metrics.verification import held_out_scores, kfold_accuracy
from facetrain.eval.protocols.lfw import LfwPairs, lfw_metrics


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_fold_pca_scores_match_sklearn():
    rng = np.random.default_rng(0)
    left, right = rng.normal(size=(60, 10)), rng.normal(size=(60, 10))
    fold = np.repeat(np.arange(3), 20)
    got = fold_pca_scores(left, right, fold, 4)
    for f in range(3):
        train = fold != f
        pca = PCA(4).fit(np.r_[_unit(left)[train], _unit(right)[train]])
        a, b = _unit(pca.transform(_unit(left))), _unit(pca.transform(_unit(right)))
        np.testing.assert_allclose(got[f], np.sum(a * b, axis=1), atol=1e-10)
    kept = fold_pca_scores(left, right, fold, 0.995)  # a variance fraction keeps enough components
    assert kept.shape == (3, 60) and np.isfinite(kept).all()


def test_euclidean_is_a_monotone_map_of_cosine():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 6)), rng.normal(size=(50, 6))
    cos, euc = pair_scores(a, b, "cosine"), pair_scores(a, b, "euclidean")
    np.testing.assert_allclose(euc, -np.sqrt(np.maximum(2 - 2 * cos, 0)), atol=1e-12)


def _known_case(seed: int, per_fold: int, dim: int, noise: float) -> tuple[LfwPairs, Features]:
    """10 folds of per_fold matched pairs (right = left + noise) and as many unrelated ones."""
    rng = np.random.default_rng(seed)
    n = 20 * per_fold
    same = np.tile(np.r_[np.ones(per_fold, bool), np.zeros(per_fold, bool)], 10)
    base = rng.normal(size=(n, dim))
    right = np.where(same[:, None], base + noise * rng.normal(size=(n, dim)), rng.normal(size=(n, dim)))
    paths_l, paths_r = [f"l{i}.jpg" for i in range(n)], [f"r{i}.jpg" for i in range(n)]
    pairs = LfwPairs(paths_l, paths_r, same, np.repeat(np.arange(10), 2 * per_fold), 10, per_fold)
    return pairs, Features(np.r_[base, right].astype(np.float32), paths_l + paths_r)


def test_lfw_metrics_on_a_known_case():
    pairs, feats = _known_case(2, per_fold=10, dim=8, noise=0.5)
    same = pairs.same
    m, scores = lfw_metrics(pairs, feats)
    assert m["lfw/auc"] == pytest.approx(roc_auc_score(same, scores))
    assert 0.5 < m["lfw/acc_mean"] <= 1 and m["lfw/acc_stderr"] == pytest.approx(m["lfw/acc_std"] * (10 / 9) ** 0.5
                                                                                  / 10**0.5)


@pytest.mark.parametrize("pca", [0, 3])
def test_lfw_accuracy_is_the_shared_kfold_loop(pca):
    """lfw_metrics runs verification.kfold_accuracy on the per-fold scores (the loop the unit tests check)."""
    pairs, feats = _known_case(3, per_fold=5, dim=6, noise=0.8)
    m, held_out = lfw_metrics(pairs, feats, pca=pca)
    left, right = feats.select(pairs.left), feats.select(pairs.right)
    scores = fold_pca_scores(left, right, pairs.fold, pca) if pca else pair_scores(left, right)
    result = kfold_accuracy(scores, pairs.same, pairs.fold)
    assert (m["lfw/acc_mean"], m["lfw/acc_std"], m["lfw/threshold_mean"]) == (
        result.mean, result.std, float(result.thresholds.mean()))
    np.testing.assert_array_equal(held_out, held_out_scores(scores, pairs.fold))
