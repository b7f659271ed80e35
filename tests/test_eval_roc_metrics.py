"""ROC numbers (AUC, EER, TAR@FAR by each read-off rule) against brute force and scikit-learn."""

from pathlib import Path

import numpy as np
import pytest
from helpers import compose_config
from sklearn.metrics import roc_auc_score, roc_curve

from facetrain.errors import FacetrainError
from facetrain.eval.features.source import ImageSet, gather_features
from facetrain.eval.metrics.roc import check_fars, eer, exact_k_threshold, matlab_round, roc_auc, tar_at_far


def _data(seed, n=400, ties=False):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.3
    scores = rng.normal(labels * 1.5, 1.0)
    return labels, np.round(scores, 1) if ties else scores


def _brute_exact_k(labels, scores, far):
    imp = sorted(scores[~labels], reverse=True)
    k = int(np.floor(far * len(imp) + 0.5))
    thr = imp[k - 1] if k else imp[0] + 1e-8
    return np.mean(scores[labels] >= thr)


def _brute_floor(labels, scores, far):
    """Try every threshold (accept iff score >= t); keep the best TPR whose FPR stays <= far."""
    best = 0.0
    for t in np.r_[np.unique(scores), np.inf]:
        if np.mean(scores[~labels] >= t) <= far:
            best = max(best, np.mean(scores[labels] >= t))
    return best


@pytest.mark.parametrize("seed, ties", [(0, False), (1, True), (2, True)])
@pytest.mark.parametrize("far", [0.001, 0.01, 0.05, 0.2])
def test_exact_k_and_floor_match_brute_force(seed, ties, far):
    labels, scores = _data(seed, ties=ties)
    if matlab_round(far * (~labels).sum()) > 0:
        assert tar_at_far(labels, scores, far, "exact_k").tar == pytest.approx(_brute_exact_k(labels, scores, far))
    assert tar_at_far(labels, scores, far, "floor").tar == pytest.approx(_brute_floor(labels, scores, far))


def test_interp_lies_between_its_neighbours_and_is_linear():
    labels = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0], bool)
    scores = np.arange(10, 0, -1, dtype=float)  # 10 > 9 > ... : ranks decide
    # ROC points (FPR, TPR): (0, 1/3) after score 10, (1/7, 1/3), (1/7, 2/3), (2/7, 2/3) ...
    point = tar_at_far(labels, scores, 0.5 / 7, "interp")
    assert point.tar == pytest.approx(1 / 3)  # the flat stretch between FPR 0 and 1/7
    point = tar_at_far(labels, scores, 1.5 / 7, "interp")
    assert point.tar == pytest.approx(2 / 3)
    labels2 = np.array([1, 0], bool)
    assert tar_at_far(labels2, np.array([0.5, 0.5]), 0.5, "interp").tar == pytest.approx(0.5)  # a tie: diagonal


def test_nearest_follows_insightface():
    labels, scores = _data(3)
    fpr, tpr, _ = roc_curve(labels, scores)
    for far in (0.01, 0.1, 0.3):
        i = np.argmin(np.abs(fpr - far))  # insightface: nearest FPR; the max TPR among equals
        best = tpr[np.abs(fpr - far) == np.abs(fpr[i] - far)].max()
        assert tar_at_far(labels, scores, far, "nearest").tar == pytest.approx(best)


def test_auc_and_eer():
    labels, scores = _data(4, n=2000)
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    # brute force EER: the threshold where FAR and FRR are closest
    ts = np.unique(scores)
    far = np.array([np.mean(scores[~labels] >= t) for t in ts])
    frr = np.array([np.mean(scores[labels] < t) for t in ts])
    i = np.argmin(np.abs(far - frr))
    assert eer(labels, scores) == pytest.approx((far[i] + frr[i]) / 2, abs=2e-3)


def test_separable_and_shuffled():
    labels = np.r_[np.ones(100, bool), np.zeros(900, bool)]
    scores = np.r_[np.linspace(1, 2, 100), np.linspace(-1, 0.5, 900)]
    for method in ("exact_k", "floor", "interp", "nearest"):
        assert tar_at_far(labels, scores, 1e-3, method).tar == 1.0
    assert eer(labels, scores) == 0.0 and roc_auc(labels, scores) == 1.0
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(labels)
    assert 0.4 < roc_auc(shuffled, scores) < 0.6
    assert tar_at_far(shuffled, scores, 0.1, "exact_k").tar == pytest.approx(0.1, abs=0.07)


def test_k_zero_rules_and_rounding():
    imp = np.array([0.9, 0.5, 0.1])
    assert exact_k_threshold(imp, 0.1, np.array([0.95, 0.99, 0.3])) == pytest.approx(0.925)  # BLUFR midpoint
    assert exact_k_threshold(imp, 0.1, zero_rule="pfe") == pytest.approx(0.9 + 1e-8)
    assert exact_k_threshold(imp, 0.5) == 0.5  # round(1.5) = 2 (half away from zero, as MATLAB)
    assert matlab_round(2.5) == 3 and matlab_round(0.5) == 1 and matlab_round(0.49) == 0


def test_one_class_only_is_an_error():
    with pytest.raises(FacetrainError, match="genuine and impostor"):
        tar_at_far(np.ones(5, bool), np.arange(5.0), 0.1)


@pytest.mark.parametrize("far", [0.0, 2.0, float("nan")])
def test_a_far_outside_0_1_is_an_error_not_a_tar(far):
    with pytest.raises(FacetrainError, match="is not a rate; give protocol.fars in"):
        tar_at_far(np.arange(6) % 2 == 0, np.arange(6.0), far)


@pytest.mark.parametrize("protocol", ["lfw", "blufr", "ijba", "ijbc", "rfw"])
def test_fars_that_are_not_rates_are_one_line_before_any_embedding(protocol):
    # each protocol formatted `{far:g}` first: a ValueError traceback for [abc]
    cfg = compose_config("eval", [f"protocol={protocol}", "protocol.fars=[abc]", "model=nowhere"])
    with pytest.raises(FacetrainError, match=r"^protocol.fars=\[abc\] must be numbers in \(0, 1\]"):
        gather_features(cfg, ImageSet(Path("nowhere"), ["a.jpg"]), protocol)


def test_fars_must_list_rates():
    assert check_fars([0.001, 1]) == [0.001, 1.0]
    for fars, shown in ((0.01, "0.01"), ("abc", "'abc'"), ([0.01, True], r"\[0.01,True\]"), ([0], r"\[0\]"),
                        ([float("nan")], r"\[nan\]")):
        with pytest.raises(FacetrainError, match=f"^protocol.fars={shown} must be"):
            check_fars(fars)
