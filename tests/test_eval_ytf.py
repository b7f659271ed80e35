"""YouTube Faces: the real splits file parses; video scores, histograms and HIK-SVM against plain computations."""

import numpy as np
import pytest
from helpers import PROTOCOLS

from facetrain.errors import FacetrainError
from facetrain.eval.verification import kfold_accuracy
from facetrain.eval.video_scores import hik_kernel, hik_svm_accuracy, pair_histograms, video_mean_scores
from facetrain.eval.ytf import subsample, ytf_metrics
from facetrain.eval.ytf_splits import YtfPairs, parse_ytf_splits

REAL = PROTOCOLS / "ytf" / "splits_no_header.txt"


@pytest.mark.skipif(not REAL.exists(), reason="../shared/protocols/ytf/splits_no_header.txt not present")
def test_real_splits_file(tmp_path):
    pairs = parse_ytf_splits(REAL)
    assert len(pairs) == 5000
    for f in range(10):
        same = pairs.same[pairs.fold == f]
        assert len(same) == 500 and same[:250].all() and not same[250:].any()
    assert (pairs.left[0], pairs.right[0]) == ("Sadie_Frost/1", "Sadie_Frost/5")
    assert len(pairs.videos) == 3226
    # the official file has one header line; the same content with it (and CRLF) parses the same
    with_header = tmp_path / "splits.txt"
    with_header.write_bytes(b"split number, pair number in split, first name, second name, is same\r\n"
                            + REAL.read_bytes().replace(b"\n", b"\r\n"))
    again = parse_ytf_splits(with_header)
    assert again.left == pairs.left and (again.same == pairs.same).all() and again.lines[0] == 2


@pytest.mark.parametrize("text, where", [
    ("1, 1, A/1, A/2\n", ":1:"),                    # 4 fields
    ("1, 1, A/1, A/2, 1\n1, 2, A/1, B, 0\n", ":2:"),  # not Person/idx
    ("1, 1, A/1, A/2, yes\n", ":1:"),                # bad label
])
def test_malformed_lines_name_file_and_line(tmp_path, text, where):
    path = tmp_path / "splits.txt"
    path.write_text(text)
    with pytest.raises(FacetrainError, match=where):
        parse_ytf_splits(path)


def _videos(seed):
    rng = np.random.default_rng(seed)
    return {f"P{i}/0": rng.normal(size=(int(rng.integers(2, 6)), 8)) for i in range(6)}


def test_mean_score_is_the_mean_of_frame_pair_cosines():
    videos = _videos(0)
    left, right = ["P0/0", "P1/0", "P2/0"], ["P3/0", "P1/0", "P5/0"]
    got = video_mean_scores(videos, left, right)
    for k, (a, b) in enumerate(zip(left, right, strict=True)):
        cos = [x @ y / np.linalg.norm(x) / np.linalg.norm(y) for x in videos[a] for y in videos[b]]
        assert got[k] == pytest.approx(np.mean(cos))
    mu = np.ones(8)
    centred = {v: f - mu for v, f in videos.items()}
    np.testing.assert_allclose(video_mean_scores(videos, left, right, mu), video_mean_scores(centred, left, right))


def test_histograms_and_hik_kernel():
    videos = _videos(1)
    left, right = ["P0/0", "P1/0"], ["P2/0", "P1/0"]
    hists = pair_histograms(videos, left, right)
    assert hists.shape == (2, 100) and np.allclose(hists.sum(axis=1), 1)
    a, b = videos["P1/0"], videos["P1/0"]
    cos = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    assert hists[1, 99] == pytest.approx(np.mean(cos > 0.98))  # the diagonal (cos = 1) lands in the last bin
    rng = np.random.default_rng(0)
    x, y = rng.random((5, 7)), rng.random((4, 7))
    brute = np.array([[sum(min(p, q) for p, q in zip(r, s, strict=True)) for s in y] for r in x])
    np.testing.assert_allclose(hik_kernel(x, y, block=2), brute)


def test_hik_svm_separable_and_shuffled():
    rng = np.random.default_rng(0)
    fold = np.repeat(np.arange(10), 20)
    same = np.tile(np.r_[np.ones(10, bool), np.zeros(10, bool)], 10)
    centres = np.where(same, 80, 30)  # same-person histograms peak at high cosine
    hists = np.stack([np.histogram(rng.normal(c, 5, 50), np.arange(101))[0] / 50 for c in centres])
    assert hik_svm_accuracy(hists, same, fold).mean() == 1.0
    chance = hik_svm_accuracy(rng.permutation(hists), same, fold).mean()
    assert 0.3 < chance < 0.7


def test_subsample_keeps_ends_and_spreads():
    frames = [f"f{i}" for i in range(10)]
    assert subsample(frames, 0) == frames and subsample(frames, 20) == frames
    assert subsample(frames, 4) == ["f0", "f3", "f6", "f9"]


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("classifier", ["threshold", "svm"])
def test_ytf_accuracy_is_the_shared_kfold_loop(center, classifier):
    """ytf_metrics runs verification.kfold_accuracy on the mean scores, one row per split when centred."""
    rng = np.random.default_rng(7)
    videos = {f"P{i}/{j}": rng.normal(size=(1, 8)) * 2 + rng.normal(size=(3, 8)) for i in range(12) for j in range(2)}
    left = [f"P{i % 12}/0" for i in range(24)]
    same = np.arange(24) % 2 == 0
    right = [f"P{i % 12}/1" if s else f"P{(i + 5) % 12}/1" for i, s in enumerate(same)]
    fold = np.repeat(np.arange(4), 6)
    pairs = YtfPairs(left, right, same, fold, list(range(1, 25)))
    m, _ = ytf_metrics(videos, pairs, center=center, classifier=classifier, hik=False)
    if center:
        rows = []
        for k in range(4):  # compare_feature.m: the mean over the training pairs' video slots
            train = np.flatnonzero(fold != k)
            mu = np.mean([videos[left[i]].mean(0) for i in train] + [videos[right[i]].mean(0) for i in train], axis=0)
            rows.append(video_mean_scores(videos, left, right, mu))
        scores = np.stack(rows)
    else:
        scores = video_mean_scores(videos, left, right)
    result = kfold_accuracy(scores, same, fold, classifier)
    assert (m["ytf/acc_mean"], m["ytf/acc_std"]) == (result.mean, result.std)
