"""`facetrain data audit`: planted faults found on tiny synthetic trees, the exclusion list, bad inputs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_SPEC, compose_config, run_cli
from hydra.utils import instantiate

from facetrain.audit.duplicates import identity_pairs, keep_first, merge_pairs, near_pairs
from facetrain.audit.label_checks import (
    centres,
    chance_levels,
    eval_matches,
    impostor_ratios,
    merged_identities,
    mislabeled_images,
    nearest_other,
    own_fit,
    photo_cuts,
    split_half_ratios,
    typical_within,
    within_similarity,
)
from facetrain.data.formats.rec_convert import folder_to_rec
from facetrain.data.synth import SynthSpec, write_synthetic_data
from facetrain.data.synth.faults import FaultSpec, read_faults
from facetrain.errors import user_error_in

_SMALL = dict(TINY_SPEC.__dict__ | dict(train_identities=14, image_size=(56, 48), insightface=False))


def _tree(tmp_path: Path, **faults) -> Path:
    root = tmp_path / "data"
    write_synthetic_data(root / "synth", SynthSpec(**(_SMALL | {"faults": FaultSpec(**faults)})), workers=1)
    return root


def _audit(root: Path, out: Path, *extra: str, check: bool = True):
    return run_cli("data", "audit", "data=folder", f"data.root={root / 'synth' / 'casia'}", f"paths.data={root}",
                   f"audit.out={out}", "audit.cache_dir=null", "audit.workers=0", "audit.progress=false",
                   f"hydra.run.dir={out}", *extra, cwd=root, check=check)


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_planted_duplicates_are_found_and_excluded_from_the_next_run(tmp_path):
    """Exact (byte copy, PNG re-save) and near (shrunk, recompressed, cropped) copies, within and across
    identities, are each found; the exclusion list then removes exactly the flagged images from the dataset."""
    root = _tree(tmp_path, exact_duplicates=2, near_duplicates=3)
    faults = read_faults(root / "synth" / "casia")
    _audit(root, tmp_path / "audit")
    groups: dict[tuple[str, str], set[str]] = {}
    for row in _rows(tmp_path / "audit" / "duplicates.csv"):
        groups.setdefault((row["kind"], row["group"]), set()).add(row["image"])
    for fault in faults:
        if fault["kind"].endswith("duplicate"):
            kind = fault["kind"].split("_")[0]
            assert any({fault["item"], fault["source"]} <= g for (k, _), g in groups.items() if k == kind), fault
    assert sum(len(g) - 1 for g in groups.values()) == 5  # nothing else flagged: no false duplicates

    def dataset(*extra):
        cfg = compose_config("train", ["data=folder", f"data.root={root / 'synth' / 'casia'}", "data.cache_dir=null",
                                       "data.num_workers=0", *extra])
        ds = instantiate(cfg.data.dataset)
        return {ds._name(j) for j in range(len(ds))}

    flagged = {line.split("\t")[0] for line in (tmp_path / "audit" / "exclude.tsv").read_text().splitlines()
               if not line.startswith("#")}
    assert len(flagged) == 5
    assert dataset() - dataset(f"data.exclude={tmp_path / 'audit' / 'exclude.tsv'}") == flagged


def test_an_identity_line_removes_the_whole_identity(tmp_path, tiny_data):
    lst = tmp_path / "exclude.tsv"
    lst.write_text("# comment\n0000002/\tmerged\n0000003/001.jpg\tmislabeled\n")
    cfg = compose_config("train", ["data=folder", f"data.root={tiny_data / 'synth' / 'casia'}", "data.cache_dir=null",
                                   f"data.exclude={lst}"])
    ds = instantiate(cfg.data.dataset)
    names = {ds._name(j) for j in range(len(ds))}
    assert "0000002" not in ds.classes and not any(n.startswith("0000002/") for n in names)
    assert "0000003/001.jpg" not in names and "0000003/002.jpg" in names
    assert ds.report()["selection"]["removed_by_exclude_list"] == len(list((tiny_data / "synth/casia/0000002").iterdir())) + 1


def test_a_list_that_names_nothing_of_the_data_is_refused_and_a_stale_entry_warned(tmp_path, tiny_data, caplog):
    root = tiny_data / "synth" / "casia"
    lst = tmp_path / "exclude.tsv"

    def dataset():
        cfg = compose_config("train", ["data=folder", f"data.root={root}", "data.cache_dir=null",
                                       f"data.exclude={lst}"])
        return instantiate(cfg.data.dataset)

    lst.write_text(f"{root}/0000002/001.jpg\tduplicate\nnobody/\tmerged\n")  # absolute paths, another set's name
    with pytest.raises(Exception) as err:  # Hydra's instantiate wraps it; user_error_in unwraps it
        dataset()
    assert f"none of its 2 entries names an image or identity of {root} " in str(user_error_in(err.value))
    lst.write_text("0000002/001.jpg\tduplicate\nnobody/\tmerged\n")
    assert "0000002/001.jpg" not in {dataset()._name(j) for j in range(len(dataset()))}
    assert "1 of its 2 entries name nothing in this data (first: 'nobody/')" in caplog.text


def _clusters(rng, people: int, per: int, dim: int = 32, spread: float = 0.35):
    """Unit embeddings of `people` well separated people, `per` images each, labels = person."""
    centre = rng.normal(size=(people, dim))
    feats = np.repeat(centre, per, axis=0) + spread * rng.normal(size=(people * per, dim))
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    return feats.astype(np.float32), np.repeat(np.arange(people), per)


def test_label_checks_find_each_kind_in_embeddings():
    """Person 0 filed as labels 0 and 1 (merged); one image of person 3 filed under 4 (mislabeled); an
    evaluation person equal to person 5 (overlap) - and nothing else."""
    rng = np.random.default_rng(0)
    feats, person = _clusters(rng, 8, 6)
    labels = person.copy()
    labels[person == 1] = 7  # person 1's images go to label 7 ...
    labels[np.flatnonzero(person == 0)[3:]] = 1  # ... and half of person 0's to label 1: one person, two names
    moved = np.flatnonzero(person == 3)[0]
    labels[moved] = 4
    c, sums, counts = centres(feats, labels, 8)
    ok = np.ones(len(labels), bool)
    eval_feats, _ = _clusters(np.random.default_rng(0), 8, 6)  # same draws: the same 8 people
    eval_c, eval_sums, eval_counts = centres(eval_feats[np.isin(person, [5, 6])], np.repeat([0, 1], 6), 2)
    eval_c[1], eval_sums[1] = -eval_c[1], -eval_sums[1]  # evaluation person 1 is no one of the training set
    prior = typical_within(sums, counts)
    for merge, margin, match in ((0.8, 0.15, 0.8), ("auto", "auto", "auto")):  # fixed cuts, and calibrated ones
        null = split_half_ratios(feats, labels, ok, prior)
        merged, best, _ = merged_identities(c, sums, counts, merge, null, 0.01, prior)
        assert [(a, b) for a, b, _, _ in merged] == [(0, 1)] and len(best) == 8
        found, gaps, _ = mislabeled_images(feats, labels, ok, sums, counts, c, margin, 4)
        assert [(i, o) for i, o, _, _ in found] == [(moved, 3)] and len(gaps) == len(labels)
        impostors = impostor_ratios(c, sums, counts, feats, labels, ok, prior, exclude=(0, 1))
        cuts = photo_cuts(match, null, 0.01, impostors)
        matches = eval_matches(c, sums, counts, eval_c, eval_sums, eval_counts, cuts, prior)
        assert [(t, p) for t, p, _, _ in matches] == [(5, 0)]


@pytest.mark.slow
def test_audit_with_a_model_writes_every_file(tmp_path):
    """A tiny trained run drives the face checks end to end (evaluation sets: the LFW tree and its .bin)."""
    root = _tree(tmp_path, merged_identities=1, eval_overlap=1)
    run = tmp_path / "run"
    run_cli("train", f"paths.data={root}", f"data.root={root / 'synth' / 'casia'}", f"hydra.run.dir={run}",
            "device=cpu", "iterations=2", "batch_size=8", "data.num_workers=0", "progress=false", "embedding_dim=16",
            "backbone.channels=[4,8,8,16]", "val.every=0", "input_size=[56,48]", cwd=root)
    proc = _audit(root, tmp_path / "audit", f"model={run}", f"audit.eval=[{root / 'synth' / 'lfw'}]",
                  "audit.merge_threshold=-1", "audit.eval_threshold=auto")
    assert "identities in evaluation sets" in proc.stdout
    merged = _rows(tmp_path / "audit" / "merged_identities.csv")
    assert merged and all(float(r["ratio"]) >= -1 for r in merged)  # threshold -1: every near pair is listed
    overlap = [r for r in _rows(tmp_path / "audit" / "eval_overlap.csv") if r["found_by"] == "embedding"]
    # merge_threshold=-1 pairs every identity, and paired identities draw no chance level: the cell stays empty
    assert overlap and all(int(r["photos"]) >= 1 and r["chance"] == "" for r in overlap)
    for name in ("audit.md", "audit.json", "mislabeled.csv", "eval_overlap.csv", "identity_similarity_ratio.png"):
        assert (tmp_path / "audit" / name).stat().st_size > 0


@pytest.mark.parametrize("case", ["empty", "unreadable", "setting", "type", "out_file",
                                  pytest.param("model", marks=pytest.mark.slow)])
def test_bad_inputs_are_one_line_and_write_nothing(tmp_path, case):
    root = tmp_path / "data"
    tree = root / "synth" / "casia"
    (tree / "0000001").mkdir(parents=True)
    extra = []
    if case != "empty":
        (tree / "0000001" / "001.jpg").write_bytes(b"not a jpeg")
    if case == "model":
        onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install 'facetrain[export]')")
        pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
        from onnx import TensorProto, helper

        from facetrain.data.images.image_io import read_image
        from facetrain.data.synth import render_face, sample_identity, sample_nuisance

        rng = np.random.default_rng(0)
        render_face(sample_identity(rng), sample_nuisance(rng), rng, (48, 56)).save(tree / "0000001" / "001.jpg")
        assert read_image(tree / "0000001" / "001.jpg").shape[0] == 3
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "maps",  # 5-channel input: no photo fits
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, 8, 6])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 8, 6])])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "maps.onnx")
        extra = [f"model={tmp_path / 'maps.onnx'}"]
    if case == "setting":
        extra = ["audit.near_residual=-0.1"]
    if case == "type":
        extra = ["audit.min_images=abc"]
    if case == "out_file":
        (tmp_path / "notes.txt").write_text("a file, not a folder")
        extra = [f"audit.out={tmp_path / 'notes.txt'}"]
    out = tmp_path / "audit"
    proc = _audit(root, out, *extra, check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("facetrain: error")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert {"empty": "no images found", "unreadable": "can be decoded", "model": "maps.onnx",
            "setting": "audit.near_residual=-0.1: 1 - NCC once aligned from 0 to 2",
            "type": "audit.min_images='abc' must be an integer >= 0",
            "out_file": "notes.txt is a file; give a folder"}[case] in errors[0]
    assert not out.exists() or not [p for p in out.iterdir() if p.name != ".hydra" and not p.suffix == ".log"]


def test_one_kind_or_evaluation_set_may_be_given_without_a_list():
    from facetrain.audit.command import _check_settings

    assert _check_settings(compose_config("data", ["audit.exclude=mislabeled"])) == ["mislabeled"]  # not its letters


def test_nearest_other_is_each_photos_cosine_to_the_closest_other_centre():
    """The near-duplicate face check's floor: each readable image against every other identity's centre (brute
    force here), its own identity skipped; an unreadable image has none."""
    feats, labels = _clusters(np.random.default_rng(5), 5, 4)
    ok = np.ones(len(labels), bool)
    ok[7] = False
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    c, _, _ = centres(unit[ok], labels[ok], 5)
    got = nearest_other(feats, labels, ok, c)
    want = [max(float(unit[i] @ c[j]) for j in range(5) if j != labels[i]) for i in range(len(labels))]
    assert np.isnan(got[7]) and np.allclose(np.delete(got, 7), np.delete(want, 7), atol=1e-5)
    assert np.isnan(nearest_other(feats[:4], np.zeros(4, np.int64), np.ones(4, bool), c[:1])).all()  # one identity


def test_a_duplicate_group_keeps_the_copy_under_the_photos_own_identity():
    """Person 0's photo 2 is copied under label 3: a one-one tie, which the copies' fit to their identities
    breaks (the source fits its own images, the copy does not) - even though the copy sorts first. A photo filed
    twice under label 5 and once under 4 keeps label 5's earliest copy (the majority)."""
    rng = np.random.default_rng(0)
    feats, labels = _clusters(rng, 6, 5)
    copy = len(labels)
    feats, labels = np.concatenate([feats, feats[2:3]]), np.append(labels, 3)
    fit = own_fit(feats, labels, np.ones(len(labels), bool))
    assert fit[2] > 0.5 > fit[copy] and np.isfinite(fit).all()
    order = np.r_[copy, np.arange(copy)]  # the copy first by name: it used to be the one kept
    groups = keep_first([sorted([int(np.flatnonzero(order == 2)[0]), 0])], labels[order], fit[order])
    assert groups == [[int(np.flatnonzero(order == 2)[0]), 0]]
    assert keep_first([[20, 26, 27]], labels, fit) == [[26, 20, 27]]  # 20 is label 4; 26, 27 label 5
    assert keep_first([[21, 22]], labels, np.full(len(labels), np.nan)) == [[21, 22]]  # no evidence: the first


@pytest.mark.slow
def test_audit_of_a_recordio_pack_finds_the_planted_duplicates_and_its_list_applies(tmp_path):
    """The synthetic tree with planted exact duplicates converted to an insightface pack: the audit names the
    copies `train.rec:<key>`, keeps each source (also the one a copy under another identity duplicates), and a
    data=rec run with the exclusion list loses exactly those records."""
    root = _tree(tmp_path, exact_duplicates=4)
    pack = tmp_path / "pack"
    folder_to_rec(root / "synth" / "casia", pack, progress=False)
    rows = [line.split("\t") for line in (pack / "train.lst").read_text().splitlines()]
    key_of = {rel: f"train.rec:{key}" for key, _, rel in rows}
    out = tmp_path / "audit"
    run_cli("data", "audit", "data=rec", f"data.root={pack}", f"paths.data={root}", f"audit.out={out}",
            "audit.cache_dir=null", "audit.workers=0", "audit.progress=false", f"hydra.run.dir={out}", cwd=root)
    copies = {key_of[f["item"]] for f in read_faults(root / "synth" / "casia") if f["kind"] == "exact_duplicate"}
    flagged = {line.split("\t")[0] for line in (out / "exclude.tsv").read_text().splitlines()
               if not line.startswith("#")}
    assert len(copies) == 4 and flagged == copies

    def names(*extra):
        cfg = compose_config("train", ["data=rec", f"data.root={pack}", "data.num_workers=0", *extra])
        ds = instantiate(cfg.data.dataset)
        return {ds._name(j) for j in range(len(ds))}

    assert names() - names(f"data.exclude={out / 'exclude.tsv'}") == copies


def test_within_similarity_and_the_merge_ratio_match_pairwise_means():
    """The summed-feature shortcuts equal the mean over image pairs computed one by one; a person split in two
    scores a ratio near 1, two people well below it."""
    rng = np.random.default_rng(3)
    feats, person = _clusters(rng, 2, 8)
    sums, counts = centres(feats, person, 2)[1:]
    gram = feats @ feats.T
    for p in range(2):
        block = gram[np.ix_(person == p, person == p)]
        assert within_similarity(sums, counts.astype(float))[p] == pytest.approx(
            (block.sum() - np.trace(block)) / (8 * 7), abs=1e-6)
    halves = np.where(person == 0, np.arange(16) % 2, 2 + (np.arange(16) % 2))  # each person filed under two labels
    c, sums, counts = centres(feats, halves, 4)
    prior = typical_within(sums, counts)
    merged, best, _ = merged_identities(c, sums, counts, 0.8, np.zeros(0), 0.01, prior, k=3)
    cross = gram[np.ix_(halves == 0, halves == 1)].mean()
    # each half's mean over its 6 pairs, plus one pair at the prior
    own = [(lambda b: ((b.sum() - np.trace(b)) / 2 + prior) / 7)(gram[np.ix_(halves == h, halves == h)]) for h in (0, 1)]
    assert [(a, b) for a, b, _, _ in merged] == [(0, 1), (2, 3)]
    assert merged[0][2] == pytest.approx(cross / np.sqrt(own[0] * own[1]), abs=1e-5)
    assert best.max() < 1.3 and np.sort(best)[:2].min() > 0.8
    assert merged_identities(c, sums, counts, "auto", np.zeros(0), 0.01, 0.5)[0] == []  # no null: nothing claimed
    null = split_half_ratios(feats, person, np.ones(16, bool), typical_within(sums, counts))  # each person's 8 photos split 4 / 4 at random
    assert len(null) == 2 * 32 and np.all(np.abs(null - 1) < 0.2)


def test_split_halves_are_the_ratios_of_a_persons_possible_splits():
    """A person of four photos has three ways to be split two / two: each null value is one of them (each
    computed from its pairwise cosines), and the 32 splits draw all three; a person of three photos is skipped."""
    feats, person = _clusters(np.random.default_rng(8), 2, 4)
    person[7] = 2  # person 1 keeps three photos
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    prior = 0.5
    null = split_half_ratios(unit, person, np.ones(8, bool), prior, splits=32, seed=1)

    def own(i, j):  # one pair plus one at the prior
        return (unit[i] @ unit[j] + prior) / 2

    want = []
    for a, b in (((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2))):
        cross = np.mean([unit[i] @ unit[j] for i in a for j in b])
        want.append(cross / np.sqrt(own(*a) * own(*b)))
    assert len(null) == 32
    assert np.allclose(np.sort(np.unique(np.round(null, 6))), np.sort(np.round(want, 6)), atol=1e-5)


def test_a_person_of_few_photos_needs_the_ratio_chance_would_not_give():
    """photo_cuts raises the split-half cut for evaluation people with as few photos as let someone else reach it
    by chance; impostor_ratios measures that chance against each identity's nearest others."""
    null = np.linspace(0.9, 1.1, 101)
    impostors = np.vstack([np.full(50, 0.97), np.full(50, 0.5)])  # one photo: others reach 0.97; two: 0.5
    assert photo_cuts("auto", null, 0.01, impostors) == pytest.approx([0.97, 0.902])
    assert photo_cuts(0.7, null, 0.01, impostors).tolist() == [0.7, 0.7]
    assert chance_levels(impostors, [0.97, 0.5, 0.6], [1, 2, 5]).tolist() == [1.0, 1.0, 0.0]  # 5 photos: the last row
    draws = np.random.default_rng(3).normal(size=(3, 200))
    ratios, photos = np.array([-0.5, 0.0, 1.2, 9.0]), np.array([1, 3, 2, 7])
    expected = [(draws[min(m, 3) - 1] >= r).mean() for r, m in zip(ratios, photos, strict=True)]
    assert chance_levels(draws, ratios, photos) == pytest.approx(expected)
    assert np.isnan(chance_levels(np.zeros((1, 0)), [0.9], [2])).all()  # a fixed threshold draws nothing
    feats, person = _clusters(np.random.default_rng(4), 6, 5)
    c, sums, counts = centres(feats, person, 6)
    ratios = impostor_ratios(c, sums, counts, feats, person, np.ones(30, bool), typical_within(sums, counts),
                             exclude=(5,), photos=3, draws=1)
    assert ratios.shape == (3, 5) and np.all(ratios < 0.5)  # six separate people: far below one person's ~1
    assert impostor_ratios(c, sums, counts, feats, person, np.ones(30, bool), typical_within(sums, counts),
                           exclude=(5,), photos=3).shape == (3, 5 * 4)  # four draws each by default


def test_identity_pairs_are_every_close_pair_within_an_identity():
    """Checked against all pairs one by one: same identity, both readable, within the distance; the union with
    the whole-set search lists each pair once, at its distance."""
    rng = np.random.default_rng(4)
    thumbs = rng.standard_normal((40, 12))
    thumbs[20:30] = thumbs[:10] + 0.3 * rng.standard_normal((10, 12))  # near copies, some across identities
    thumbs = (thumbs / np.linalg.norm(thumbs, axis=1, keepdims=True)).astype(np.float32)
    labels = rng.integers(0, 4, 40)
    ok = np.ones(40, bool)
    ok[3] = False
    pairs, dist = identity_pairs(thumbs, labels, ok, 0.2)
    want = {(i, j): 1 - float(thumbs[i] @ thumbs[j]) for i in range(40) for j in range(i + 1, 40)
            if labels[i] == labels[j] and ok[i] and ok[j] and 1 - float(thumbs[i] @ thumbs[j]) <= 0.2}
    assert want and {tuple(p) for p in pairs.tolist()} == set(want)
    assert np.allclose(dist, [want[tuple(p)] for p in pairs.tolist()], atol=1e-5)
    both, both_dist = merge_pairs((pairs, dist), near_pairs(thumbs, ok, 0.2, k=3))
    assert len(both) == len({tuple(p) for p in both.tolist()}) >= len(pairs)
    assert np.allclose(both_dist, [1 - float(thumbs[i] @ thumbs[j]) for i, j in both], atol=1e-5)


def test_the_summary_counts_the_tree_as_planted(tmp_path):
    """Planting adds copies and splits identities off: synth.json and the printed line count the tree on disk."""
    spec = SynthSpec(**(_SMALL | {"train_identities": 6, "faults": FaultSpec(exact_duplicates=2, merged_identities=1,
                                                                               eval_overlap=1)}))
    summary = write_synthetic_data(tmp_path / "synth", spec, workers=1)
    folders = [d for d in (tmp_path / "synth" / "casia").iterdir() if d.is_dir()]
    assert summary["train_identities"] == len(folders) == 6 + 2  # one split off, one evaluation person added
    assert summary["train_images"] == sum(len(list(d.glob("*.jpg"))) for d in folders)
    assert json.loads((tmp_path / "synth" / "synth.json").read_text())["train_images"] == summary["train_images"]


def test_importing_the_audit_leaves_out_faiss_loader_chatter():
    """faiss's loader logs each SIMD build it cannot load as a ModuleNotFoundError, at INFO, which Hydra prints."""
    code = ("import io, logging; buf = io.StringIO(); logging.basicConfig(level=logging.INFO, stream=buf)\n"
            "import facetrain.audit.duplicates, facetrain.audit.label_checks\nprint(buf.getvalue(), end='')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "faiss.loader" not in proc.stdout, proc.stdout
