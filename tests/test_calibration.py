"""calibration.json: thresholds at FAR 1e-1 ... 1e-6 equal an independent computation (numpy sort, sklearn ROC)."""

import numpy as np
import pytest
from helpers import PROTOCOL_FIXTURES, compose_config
from sklearn.metrics import roc_curve

from facetrain.errors import FacetrainError
from facetrain.eval.features.file import save_features
from facetrain.eval.metrics.calibration import CALIBRATION_FARS, far_thresholds
from facetrain.eval.protocols.lfw import evaluate_lfw, parse_lfw_pairs
from facetrain.run.calibration_file import choose_set, read_calibration, threshold_at


def _independent(same: np.ndarray, scores: np.ndarray, far: float) -> tuple[float | None, float | None]:
    """(threshold, TAR) by hand: k = floor(far N) impostors may pass, threshold the (k+1)-th largest impostor
    score, `score > threshold`; TAR read from sklearn's full ROC at the last point with FPR <= far."""
    impostors = np.sort(scores[~same])
    n = len(impostors)
    k = int(far * n + 1e-9)
    if k < 1:
        return None, None
    threshold = impostors[n - 1 - k]
    fpr, tpr, _ = roc_curve(same, scores, drop_intermediate=False)
    tar = tpr[np.flatnonzero(fpr <= far * (1 + 1e-12))[-1]]
    return float(threshold), float(tar)


@pytest.mark.parametrize("ties", [False, True])
def test_thresholds_equal_a_numpy_sort_and_sklearns_roc(ties):
    rng = np.random.default_rng(0)
    same = np.r_[np.ones(700, bool), np.zeros(12_000, bool)]
    scores = np.where(same, rng.normal(0.6, 0.15, len(same)), rng.normal(0.1, 0.1, len(same)))
    if ties:  # quantized scores: many impostors share the threshold's value
        scores = np.round(scores, 2)
    entries = far_thresholds(same, scores)
    assert [e["far"] for e in entries] == list(CALIBRATION_FARS)
    for e in entries:
        threshold, tar = _independent(same, scores, e["far"])
        assert e["impostor_pairs"] == 12_000 and e["genuine_pairs"] == 700
        if threshold is None:  # 1e-5, 1e-6: fewer than 1/FAR impostors
            assert e["far"] < 1 / 12_000 and not e["resolved"] and e["threshold"] is None and e["tar"] is None
            assert "needs >= " in e["reason"]
            continue
        assert e["resolved"] and e["threshold"] == threshold and e["tar"] == pytest.approx(tar, abs=1e-12)
        accepted = int((scores[~same] > threshold).sum())
        assert e["false_accepts"] == accepted <= e["far"] * 12_000 and e["far_reached"] == accepted / 12_000
        assert int((scores[~same] >= threshold).sum()) > e["far"] * 12_000  # no lower threshold keeps the FAR
    assert [e["resolved"] for e in entries] == [True, True, True, True, False, False]


def test_non_finite_scores_are_refused():
    with pytest.raises(FacetrainError, match="finite"):
        far_thresholds(np.array([True, False]), np.array([0.5, np.nan]))


def test_eval_lfw_on_a_features_file_writes_the_thresholds_of_its_pairs(tmp_path):
    """The real 6,000-pair LFW list, features of 4 images per identity: 3,000 impostor pairs resolve 1e-3, not 1e-4."""
    pairs = parse_lfw_pairs(PROTOCOL_FIXTURES / "lfw" / "pairs.txt")
    rng = np.random.default_rng(1)
    people = {p.split("/")[0] for p in pairs.images}
    centre = {p: rng.normal(size=32) for p in sorted(people)}
    feats = np.stack([centre[p.split("/")[0]] + rng.normal(scale=1.2, size=32) for p in pairs.images])
    feats = feats.astype(np.float32)
    save_features(tmp_path / "f.npz", feats, pairs.images)
    cfg = compose_config("eval", ["protocol=lfw", f"features={tmp_path / 'f.npz'}", f"run_dir={tmp_path / 'ev'}",
                                  f"protocol.pairs={PROTOCOL_FIXTURES / 'lfw' / 'pairs.txt'}", "plots=false"])
    evaluate_lfw(cfg)
    data = read_calibration(tmp_path / "ev" / "calibration.json")
    record = data["sets"]["lfw"]
    assert record["score"] == "cosine" and record["pairs_of"] == "image" and record["mirror"] == "sum"
    assert record["features_file"] == str(tmp_path / "f.npz") and record["checkpoint"]["path"] is None
    unit = feats.astype(np.float64) / np.linalg.norm(feats.astype(np.float64), axis=1, keepdims=True)
    row = {p: i for i, p in enumerate(pairs.images)}
    scores = np.einsum("pd,pd->p", unit[[row[p] for p in pairs.left]], unit[[row[p] for p in pairs.right]])
    for entry in record["thresholds"]:
        threshold, tar = _independent(pairs.same, scores, entry["far"])
        assert entry["resolved"] == (threshold is not None) and entry["impostor_pairs"] == 3000
        if threshold is not None:
            assert entry["threshold"] == pytest.approx(threshold, abs=1e-12)
            assert entry["tar"] == pytest.approx(tar, abs=1e-12)
    assert threshold_at(record, 1e-3, "f")["threshold"] == record["thresholds"][2]["threshold"]
    with pytest.raises(FacetrainError, match=r"far=0.0001 is not resolved .*needs >= 10000 impostor pairs"):
        threshold_at(record, 1e-4, "f")
    assert choose_set(data, None, "f")[0] == "lfw"


def test_pca_scores_are_not_calibrated(tmp_path, capsys):
    pairs = parse_lfw_pairs(PROTOCOL_FIXTURES / "lfw" / "pairs.txt")
    feats = np.random.default_rng(2).normal(size=(len(pairs.images), 8)).astype(np.float32)
    save_features(tmp_path / "f.npz", feats, pairs.images)
    cfg = compose_config("eval", ["protocol=lfw", f"features={tmp_path / 'f.npz'}", f"run_dir={tmp_path / 'ev'}",
                                  f"protocol.pairs={PROTOCOL_FIXTURES / 'lfw' / 'pairs.txt'}", "plots=false",
                                  "protocol.pca=4"])
    evaluate_lfw(cfg)
    assert not (tmp_path / "ev" / "calibration.json").exists()
    assert "calibration.json not written" in capsys.readouterr().out
