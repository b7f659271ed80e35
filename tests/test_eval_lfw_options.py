"""LFW options: per-fold PCA (NormFace §5.1) and the Euclidean score, against plain scikit-learn computations."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score
from verification_helpers import threshold_rule_accuracy

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


def _hand_built(scores: np.ndarray, same: np.ndarray, per_fold: int) -> tuple[LfwPairs, Features]:
    """Pairs whose cosine is `scores` exactly: left = (1, 0), right = (s, sqrt(1 - s^2))."""
    n = len(scores)
    left = np.tile([1.0, 0.0], (n, 1))
    right = np.stack([scores, np.sqrt(1 - scores**2)], axis=1)
    paths_l, paths_r = [f"l{i}.jpg" for i in range(n)], [f"r{i}.jpg" for i in range(n)]
    pairs = LfwPairs(paths_l, paths_r, same, np.repeat(np.arange(10), 2 * per_fold), 10, per_fold)
    return pairs, Features(np.r_[left, right], paths_l + paths_r)


def test_lfw_metrics_on_a_known_case():
    """10 folds of 2 matched (cosine 0.8) + 2 mismatched (0.2) pairs; fold 0 holds one matched pair at 0.1 and
    fold 3 one mismatched pair at 0.95. Every fold's 9 others put the threshold midway, at 0.5, which gets each of
    those two folds one pair wrong: accuracies 8 x 1.0 and 2 x 0.75."""
    same = np.tile([True, True, False, False], 10)
    scores = np.where(same, 0.8, 0.2)
    scores[0], scores[3 * 4 + 2] = 0.1, 0.95
    m, held_out = lfw_metrics(*_hand_built(scores, same, per_fold=2))
    np.testing.assert_allclose(held_out, scores, atol=1e-12)
    assert m["lfw/acc_mean"] == pytest.approx(0.95, abs=1e-12)
    assert m["lfw/acc_std"] == pytest.approx(0.1, abs=1e-12)  # sqrt((8 x 0.05^2 + 2 x 0.2^2) / 10)
    assert m["lfw/acc_stderr"] == pytest.approx(0.1 * np.sqrt(10 / 9) / np.sqrt(10), abs=1e-12)
    assert m["lfw/threshold_mean"] == pytest.approx(0.5, abs=1e-9)
    assert m["lfw/auc"] == pytest.approx(19 * 19 / 400, abs=1e-12)  # 0.8 beats 0.2: 19 x 19 of 20 x 20
    assert m["lfw/eer"] == pytest.approx(0.05, abs=1e-9)  # at 0.5: 1 of 20 false accepts, 1 of 20 false rejects
    assert m["lfw/tar@far=0.001"] == 0.0  # the 0.95 impostor is above every genuine pair
    assert m["lfw/pairs"] == 40


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


def test_pca_head_and_concat_options_against_an_independent_computation(train_cfg, tiny_data, tmp_path):
    """embedding=head mirror=concat protocol.pca=4: the features are [h(b(x)), h(b(flip x))] of the checkpoint's
    backbone b and L2 head h, and accuracy and AUC follow from sklearn PCA fitted on each fold's 9 others."""
    import torch
    from helpers import compose_config
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from facetrain.data.images.image_io import read_image
    from facetrain.eval.features.file import load_features
    from facetrain.eval.protocols.lfw import parse_lfw_pairs
    from facetrain.train import train

    run = tmp_path / "run"
    train(train_cfg("loss=l2softmax", "alpha=8", run_dir=run))
    cfg = compose_config("eval", ["protocol=lfw", f"paths.data={tiny_data}", f"model={run}", f"run_dir={tmp_path / 'e'}",
                                  "device=cpu", "progress=false", "num_workers=0", "cache=false",
                                  "protocol.pca=4", "embedding=head", "mirror=concat"])
    m = instantiate(cfg.protocol.evaluate)(cfg)

    state = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    saved = OmegaConf.create(state["config"])
    backbone, head = instantiate(saved.backbone).eval(), instantiate(saved.head).eval()
    backbone.load_state_dict(state["model"]["backbone"])
    head.load_state_dict(state["model"]["head"])
    assert float(head.alpha) == 8.0
    root = tiny_data / "synth" / "lfw"
    written = load_features(tmp_path / "e" / "features_lfw.npz")
    images = torch.stack([read_image(root / p, tuple(saved.input_size), "resize") for p in written.paths])
    with torch.no_grad():
        expected = torch.cat([head(backbone(images)), head(backbone(images.flip(-1)))], dim=1).numpy()
    np.testing.assert_allclose(written.features, expected, rtol=1e-5, atol=1e-5)

    pairs = parse_lfw_pairs(root / "pairs.txt")
    row = {p: i for i, p in enumerate(written.paths)}
    left, right = (_unit(expected[[row[p] for p in side]]) for side in (pairs.left, pairs.right))
    held_out, accs = np.zeros(len(pairs.same)), []
    for f in range(10):
        test = pairs.fold == f
        pca = PCA(4).fit(np.r_[left[~test], right[~test]])
        scores = np.sum(_unit(pca.transform(left)) * _unit(pca.transform(right)), axis=1)
        held_out[test] = scores[test]
        accs.append(threshold_rule_accuracy(scores, pairs.same, test))
    assert m["lfw/pairs"] == len(pairs.same) == 40
    assert m["lfw/auc"] == pytest.approx(roc_auc_score(pairs.same, held_out), abs=1e-6)
    assert m["lfw/acc_mean"] == pytest.approx(np.mean(accs), abs=1e-9)
