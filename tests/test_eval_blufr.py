"""BLUFR: the official lists parse to the per-trial counts; block-wise all-pairs scoring equals brute force."""

import numpy as np
import pytest
from helpers import PROTOCOLS

from facetrain.errors import FacetrainError
from facetrain.eval.blufr import blockwise_verification
from facetrain.eval.blufr_lists import blufr_image_path, parse_blufr_lists
from facetrain.eval.identification import split_probes

LISTS = PROTOCOLS / "blufr" / "lfw"


@pytest.mark.skipif(not (LISTS / "image_list.txt").exists(), reason="../shared/protocols/blufr/lfw not present")
def test_official_lists_per_trial_counts():
    lists = parse_blufr_lists(LISTS)
    assert lists.trials == 10 and len(lists.images) == 13_233 and lists.labels.max() == 5_749
    assert lists.images[0] == "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"
    for t in range(10):
        train, test, gallery, probe = (lists.labels[s[t]] for s in (lists.train, lists.test, lists.gallery,
                                                                      lists.probe))
        assert len(set(train)) == 1_500 and len(set(test)) == 4_249 and not set(train) & set(test)
        assert 9_388 <= len(test) <= 10_281 and len(gallery) == len(set(gallery)) == 1_000
        assert sorted(np.r_[lists.gallery[t], lists.probe[t]]) == sorted(lists.test[t])  # test = gallery + probe
        genuine = sum(c * (c - 1) // 2 for c in np.unique(test, return_counts=True)[1])
        impostor = len(test) * (len(test) - 1) // 2 - genuine
        assert 59_104 <= genuine <= 231_834 and 44e6 <= impostor <= 53e6
        probes = split_probes(np.zeros((len(probe), 1000)), probe, gallery)
        assert 3_907 <= len(probes.mate_rank) <= 4_832 and 4_032 <= len(probes.nonmated_max) <= 4_862


def test_list_errors_name_file_and_line(tmp_path):
    (tmp_path / "image_list.txt").write_text("A_0001.jpg\nB_0001.jpg\n")
    (tmp_path / "labels.txt").write_text("1\n2\n")
    for s in ("train", "test", "gallery", "probe"):
        (tmp_path / f"{s}_set.txt").write_text("1\n2\n1, A_0001.jpg\n2, B_0001.jpg\n")
    assert parse_blufr_lists(tmp_path).test[0].tolist() == [0, 1]
    (tmp_path / "probe_set.txt").write_text("1\n2\n1, A_0001.jpg\n1, B_0001.jpg\n")
    with pytest.raises(FacetrainError, match=r"probe_set.txt:4: index 1 is A_0001.jpg"):
        parse_blufr_lists(tmp_path)
    (tmp_path / "probe_set.txt").write_text("1\n2\n1, A_0001.jpg\n")
    with pytest.raises(FacetrainError, match=r"probe_set.txt:4: expected"):
        parse_blufr_lists(tmp_path)
    assert blufr_image_path("Aaron_Eckhart_0001.jpg") == "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"


@pytest.mark.parametrize("far", [0.001, 0.01, 0.1])
def test_blockwise_equals_brute_force(far):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 40, 300)
    feats = rng.normal(size=(300, 16)) + 1.5 * rng.normal(size=(40, 16))[labels]
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    acc = blockwise_verification(feats, labels, [far], block=37)  # blocks that do not divide N
    i, j = np.triu_indices(300, k=1)
    scores = np.einsum("pd,pd->p", feats[i].astype(np.float32), feats[j].astype(np.float32))
    same = labels[i] == labels[j]
    imp = np.sort(scores[~same])[::-1]
    k = int(np.floor(far * len(imp) + 0.5))
    assert acc.impostors == len(imp) and sum(len(g) for g in acc.genuine) == same.sum()
    point = acc.point(far)
    assert point.threshold == pytest.approx(imp[k - 1], abs=1e-6)
    assert point.tar == pytest.approx(np.mean(scores[same] >= imp[k - 1]), abs=1e-3)
    assert point.far == pytest.approx(np.mean(imp >= imp[k - 1]), abs=1e-4)
