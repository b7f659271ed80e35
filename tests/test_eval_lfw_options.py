"""LFW options: per-fold PCA (NormFace §5.1) and the Euclidean score, against plain scikit-learn computations."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from facetrain.eval.features import Features
from facetrain.eval.lfw import lfw_metrics
from facetrain.eval.lfw_pairs import LfwPairs
from facetrain.eval.pair_scoring import fold_pca_scores, pair_scores


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


def test_lfw_metrics_on_a_known_case():
    rng = np.random.default_rng(2)
    n = 200
    same = np.tile(np.r_[np.ones(10, bool), np.zeros(10, bool)], 10)
    base = rng.normal(size=(n, 8))
    right = np.where(same[:, None], base + 0.5 * rng.normal(size=(n, 8)), rng.normal(size=(n, 8)))
    paths_l, paths_r = [f"l{i}.jpg" for i in range(n)], [f"r{i}.jpg" for i in range(n)]
    pairs = LfwPairs(paths_l, paths_r, same, np.repeat(np.arange(10), 20), 10, 10)
    feats = Features(np.r_[base, right].astype(np.float32), paths_l + paths_r)
    m, scores = lfw_metrics(pairs, feats)
    assert m["lfw/auc"] == pytest.approx(roc_auc_score(same, scores))
    assert 0.5 < m["lfw/acc_mean"] <= 1 and m["lfw/acc_stderr"] == pytest.approx(m["lfw/acc_std"] * (10 / 9) ** 0.5
                                                                                  / 10**0.5)
