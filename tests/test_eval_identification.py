"""1:N identification (CMC, open-set TPIR@FPIR) and template media pooling, on cases worked out by hand."""

import numpy as np
import pytest

from facetrain.errors import FacetrainError
from facetrain.eval.metrics.identification import cmc, open_set, split_probes
from facetrain.eval.metrics.templates import pool_templates

GALLERY = np.array([1, 2, 3])
PROBES = np.array([1, 2, 3, 9, 8])
SCORES = np.array([
    [0.9, 0.2, 0.1],  # mate 1 at rank 1
    [0.8, 0.6, 0.3],  # mate 2 at rank 2 (gallery 1 scores higher)
    [0.5, 0.5, 0.5],  # mate 3 tied with everyone: rank 1 (count of strictly higher scores)
    [0.7, 0.1, 0.0],  # non-mated, best 0.7
    [0.2, 0.4, 0.3],  # non-mated, best 0.4
])


def test_tiny_gallery_by_hand():
    probes = split_probes(SCORES, PROBES, GALLERY)
    assert list(probes.mate_rank) == [1, 2, 1]
    assert list(probes.mate_score) == [0.9, 0.6, 0.5] and list(probes.nonmated_max) == [0.7, 0.4]
    assert cmc(probes, [1, 2, 3]) == {1: pytest.approx(2 / 3), 2: 1.0, 3: 1.0}
    half = open_set(probes, 0.5)  # k = round(0.5 * 2) = 1: threshold 0.7, only probe 1 passes
    assert (half.tpir, half.fpir, half.threshold) == (pytest.approx(1 / 3), 0.5, 0.7)
    none = open_set(probes, 0.01)  # k = 0: just above the best non-mated score
    assert none.tpir == pytest.approx(1 / 3) and none.fpir == 0.0
    full = open_set(probes, 1.0)  # threshold 0.4: probes 1 and 3 (probe 2's mate is at rank 2)
    assert full.tpir == pytest.approx(2 / 3) and full.fpir == 1.0
    assert open_set(probes, 1.0, rank=2).tpir == 1.0


def _dir_far_reference(scores, probe_labels, gallery_labels, fpir):
    """An independent loop: BLUFR OpenSetROC / PFE DIR_FAR written plainly (stable sort, no ties here)."""
    mated = [i for i, p in enumerate(probe_labels) if p in gallery_labels]
    nonmated = [i for i, p in enumerate(probe_labels) if p not in gallery_labels]
    imp = sorted((max(scores[i]) for i in nonmated), reverse=True)
    k = int(np.floor(fpir * len(imp) + 0.5))
    thr = imp[k - 1] if k else imp[0] + 1e-8
    hits = 0
    for i in mated:
        order = np.argsort(-scores[i], kind="stable")
        top = order[0]
        hits += gallery_labels[top] == probe_labels[i] and scores[i][top] >= thr
    return hits / len(mated)


@pytest.mark.parametrize("seed", [0, 1])
def test_open_set_matches_a_plain_loop(seed):
    rng = np.random.default_rng(seed)
    gallery = np.arange(20)
    probe_labels = rng.integers(0, 30, 200)  # labels >= 20 are not in the gallery
    scores = rng.normal(0, 1, (200, 20)) + 2.0 * (probe_labels[:, None] == gallery[None, :])
    probes = split_probes(scores, probe_labels, gallery)
    for fpir in (0.01, 0.1, 0.3):
        assert open_set(probes, fpir).tpir == pytest.approx(_dir_far_reference(scores, probe_labels, gallery, fpir))
    ranks = [1 + np.argsort(-scores[i], kind="stable").tolist().index(p) for i, p in enumerate(probe_labels) if p < 20]
    assert cmc(probes, [1, 5])[5] == pytest.approx(np.mean(np.array(ranks) <= 5))


def test_gallery_with_a_subject_twice_is_refused():
    with pytest.raises(FacetrainError, match="one entry per subject"):
        split_probes(SCORES[:, :2], PROBES, np.array([1, 1]))


def test_media_pooling_by_hand():
    feats = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [5.0, 5.0]])
    templates, media = [7, 7, 7, 8], [1, 2, 2, 3]  # template 7: a still (media 1) and a 2-frame video (media 2)
    pooled = pool_templates(feats, templates, media, "media")
    # media means [2, 0] and [0, 2]; their mean [1, 1]
    assert pooled.ids == [7, 8]
    np.testing.assert_allclose(pooled.features[0], [2**-0.5, 2**-0.5])
    assert pooled.norms[0] == pytest.approx(2**0.5)
    plain = pool_templates(feats, templates, media, "mean")  # PFE: [2, 4] / 3 over the rows
    np.testing.assert_allclose(plain.features[0], np.array([1.0, 2.0]) / 5**0.5)
    unit = pool_templates(feats, templates, media, "media", normalize_images=True)  # [1, 0], [0, 1] -> [.5, .5]
    np.testing.assert_allclose(unit.features[0], [2**-0.5, 2**-0.5])
    assert unit.norms[0] == pytest.approx(0.5 * 2**0.5)
