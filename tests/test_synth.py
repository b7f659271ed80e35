"""Synthetic data: deterministic for a seed, laid out like CASIA-WebFace and LFW."""

import hashlib

import numpy as np
import pytest
from helpers import TINY_SPEC, compose_config

from facetrain.data import FaceFolder
from facetrain.data.synth import SynthSpec, write_synthetic_data
from facetrain.data.synth.command import synth
from facetrain.data.synth.faults import FaultSpec
from facetrain.data.synth.ijba_tree import _write_split
from facetrain.data.synth.rfw_tree import write_rfw
from facetrain.data.synth.trees import lfw_pairs
from facetrain.data.synth.ytf_tree import _split_pairs
from facetrain.errors import FacetrainError
from facetrain.eval import parse_lfw_pairs


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes(tiny_data, tmp_path):
    write_synthetic_data(tmp_path / "again", TINY_SPEC, workers=2)
    assert _digest(tiny_data / "synth") == _digest(tmp_path / "again")


def test_other_seed_other_faces(tiny_data, tmp_path):
    other = SynthSpec(**(TINY_SPEC.__dict__ | {"seed": 4}))
    write_synthetic_data(tmp_path / "other", other, workers=1)
    a = (tiny_data / "synth" / "casia" / "0000001" / "001.jpg").read_bytes()
    assert a != (tmp_path / "other" / "casia" / "0000001" / "001.jpg").read_bytes()


def test_layouts(tiny_data):
    casia = tiny_data / "synth" / "casia"
    assert sorted(p.name for p in casia.iterdir()) == [f"{i:07d}" for i in range(1, 7)]
    data = FaceFolder(casia, input_size=(112, 96))
    assert data.num_classes == 6 and 24 <= len(data) <= 36
    image, label = data[0]
    assert image.shape == (3, 112, 96) and image.dtype.__str__() == "torch.uint8" and label == 0
    lfw = tiny_data / "synth" / "lfw"
    pairs = parse_lfw_pairs(lfw / "pairs.txt")
    assert pairs.folds == 10 and len(pairs) == 40
    assert all((lfw / p).is_file() for p in pairs.images)
    names = {p.name for p in lfw.iterdir() if p.is_dir()}
    people = [p.split("/")[0] for p in pairs.left + pairs.right]
    folds = np.r_[pairs.fold, pairs.fold]
    for f in range(10):  # folds never share people, as in LFW View 2
        in_f = {p for p, k in zip(people, folds, strict=True) if k == f}
        out_f = {p for p, k in zip(people, folds, strict=True) if k != f}
        assert not in_f & out_f and in_f <= names


def test_existing_tree_with_other_settings_is_kept(tiny_data):
    other = SynthSpec(**(TINY_SPEC.__dict__ | {"train_identities": 7}))
    with pytest.raises(FacetrainError, match="overwrite"):
        write_synthetic_data(tiny_data / "synth", other)
    assert write_synthetic_data(tiny_data / "synth", TINY_SPEC)["reused"]


@pytest.mark.parametrize("override, message", [
    ("synth.train_identities=0", "synth.train_identities=0 must be an integer >= 1"),  # wrote lfw alone, exit 0
    ("synth.train_identities=abc", "synth.train_identities='abc' must be an integer >= 1"),  # int()'s traceback
    ("synth.image_size=[0,5]", r"synth.image_size\[0\]=0 must be an integer >= 1"),  # PIL's, after a half tree
    ("synth.faults.mislabeled=-1", "synth.faults.mislabeled=-1 must be an integer >= 0"),
    ("synth.rfw_max_images=1", "synth.rfw_max_images=1 must be an integer >= 2"),  # numpy's low >= high
    ("synth.ytf_max_videos=1", "synth.ytf_max_videos=1 must be an integer >= 2"),
    ("synth.train_max_images=2", "synth.train_max_images=2 must be >= synth.train_min_images=10"),
    ("synth.out={tmp}/notes.txt", "notes.txt is a file; give a folder"),
])
def test_bad_settings_are_one_line_before_anything_is_written(tmp_path, override, message):
    (tmp_path / "notes.txt").write_text("a file")
    cfg = compose_config("data", [f"synth.out={tmp_path / 'out'}", override.format(tmp=tmp_path)])
    with pytest.raises(FacetrainError, match=message):
        synth(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_failed_or_replaced_tree_leaves_no_stale_part(tmp_path):
    """Faults that do not fit fail after casia and lfw are rendered: none of it stays for `train` to find. A tree
    replaced by one without faults loses the old fault list (and quality list) with the old images."""
    small = SynthSpec(image_size=(16, 16), train_identities=8, train_min_images=3, train_max_images=3, lfw_folds=1,
                      lfw_pairs_per_fold=1, lfw_identities_per_fold=2, lfw_max_images=2)
    (tmp_path / "mine" / "casia").mkdir(parents=True)  # someone's own data: overwrite=true is no plain advice
    with pytest.raises(FacetrainError, match=r"choose another synth.out, or, if .* cut short, .* deletes the folders"):
        write_synthetic_data(tmp_path / "mine", small)
    out = tmp_path / "synth"
    with pytest.raises(FacetrainError, match="synth.faults needs"):
        write_synthetic_data(out, SynthSpec(**(small.__dict__ | {"faults": FaultSpec(mislabeled=100)})), workers=1)
    assert list(out.iterdir()) == []
    write_synthetic_data(out, SynthSpec(**(small.__dict__ | {"faults": FaultSpec(exact_duplicates=2)})), workers=1)
    assert (out / "faults").is_dir()
    write_synthetic_data(out, small, workers=1, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["casia", "lfw", "quality", "synth.json"]


def test_few_people_stop_or_take_every_pair_instead_of_drawing_forever(tmp_path):
    """Settings with fewer different-person pairs than asked for drew forever (`facetrain data synth` hung): LFW and
    YTF stop in one line, IJB-A takes every impostor pair there is (as IJB-C did)."""
    rng = np.random.default_rng(0)
    with pytest.raises(FacetrainError, match="LFW fold 1 has only 16 mismatched pairs; raise "
                       "synth.lfw_identities_per_fold or lower synth.lfw_pairs_per_fold"):
        lfw_pairs({"a": 8, "b": 2}, [["a", "b"]], 20, rng)  # 29 matched pairs, 8 x 2 mismatched
    with pytest.raises(FacetrainError, match="RFW African fold 1 has only 2 matched pairs; raise "
                       "synth.rfw_max_images or lower synth.rfw_pairs_per_fold"):  # it named lfw_max_images
        write_rfw(tmp_path / "rfw", 0, 3, 2, 2, (16, 16), 90, run=None, pairs_of=lfw_pairs)
    with pytest.raises(FacetrainError, match="only 16 different-person video pairs; raise ytf_identities_per_split"):
        _split_pairs(["a", "b"], {"a": 8, "b": 2}, 20, rng)
    media = [[(10 * s + k, [(f"img/{10 * s + k}.jpg", None, (0.0, 0.0, 8.0, 8.0), 0.0)]) for k in range(3)]
             for s in range(12)]  # synth.ijba_subjects=12: 4 test subjects x 3 probe templates
    assert _write_split(tmp_path, 1, media, 3, 5, rng) == {"genuine": 12, "impostor": 66 - 12}


def test_a_frown_deeper_than_thin_lips_still_renders():
    """The .bin stand-ins thin the lips (0.75x): a frown (smile < 0) deeper than they are thick once made PIL refuse
    the mouth's box (seed 8 of the audit benchmark's tree); it is drawn as a line."""
    from dataclasses import replace

    from facetrain.data.synth import render_face, sample_identity, sample_nuisance

    rng = np.random.default_rng(0)
    ident = replace(sample_identity(rng), lip_thick=1.5)
    image = render_face(ident, replace(sample_nuisance(rng), smile=-0.3), rng, (48, 56))
    assert image.size == (48, 56)
