"""`facetrain eval lfw analysis.reject=[...]`: the feature norm as a quality score (MagFace's use of it, Meng et al.
2021), read as accuracy after rejecting the lowest-norm pairs."""

import numpy as np
import pytest

from facetrain.errors import FacetrainError
from facetrain.eval.features.file import Features
from facetrain.eval.protocols.lfw import LfwPairs, lfw_fold_accuracy, lfw_metrics


def test_lfw_rejects_the_lowest_norm_pairs_first():
    """`analysis.reject`: the pairs whose lower norm is smallest go first; accuracy of the rest under the 10-fold
    thresholds. Low-norm images are made noisy, so rejecting them raises the accuracy."""
    rng = np.random.default_rng(0)
    ids, n = rng.normal(size=(40, 8)), 80
    norms = np.linspace(1, 40, n)
    rng.shuffle(norms)
    person = np.arange(n) % 40
    noise = 3.0 / norms  # low norm, low quality
    feats = (ids[person] + noise[:, None] * rng.normal(size=(n, 8))) * (norms / 3)[:, None]
    paths = [f"img{i}.jpg" for i in range(n)]
    left, right, same = [], [], []
    for k in range(40):  # pair k: image k with its other image (same) or with another person's (different)
        left.append(paths[k])
        right.append(paths[k + 40] if k % 2 == 0 else paths[(k + 41) % 80])
        same.append(k % 2 == 0)
    pairs = LfwPairs(left, right, np.array(same), np.repeat(np.arange(10), 4), 10, 2)
    features = Features(feats, paths)
    metrics, _ = lfw_metrics(pairs, features, reject=(0.0, 0.25, 0.5))
    correct = lfw_fold_accuracy(pairs, features)[0].correct
    lower = np.minimum(norms[:40], norms[[40 + k if k % 2 == 0 else (k + 41) % 80 for k in range(40)]])
    for share, kept in (("0", 40), ("0.25", 30), ("0.5", 20)):
        assert metrics[f"lfw/reject/{share}/pairs"] == kept
        keep = np.argsort(lower)[40 - kept:]
        assert metrics[f"lfw/reject/{share}/acc"] == pytest.approx(correct[keep].mean())
    assert metrics["lfw/reject/0/acc"] == pytest.approx(metrics["lfw/acc_mean"])
    assert metrics["lfw/reject/0.5/acc"] > metrics["lfw/reject/0/acc"]
    with pytest.raises(FacetrainError, match="analysis.reject"):
        lfw_metrics(pairs, features, reject=(1.0,))
