"""IJB-A's and BLUFR's calibration.json equal an independent numpy computation on small features files."""

import numpy as np
import pytest
from helpers import compose_config

from facetrain.eval.features.file import save_features
from facetrain.eval.protocols.blufr import evaluate_blufr
from facetrain.eval.protocols.ijba import evaluate_ijba
from facetrain.run.calibration_file import read_calibration


def _threshold(same: np.ndarray, scores: np.ndarray, far: float) -> tuple[float, float] | None:
    """By hand: k = floor(far N) impostors may pass; threshold = the (k+1)-th largest impostor; TAR = genuine > it."""
    impostors = np.sort(scores[~same])[::-1]
    k = int(far * len(impostors) + 1e-9)
    if k < 1:
        return None
    return float(impostors[k]), float(np.mean(scores[same] > impostors[k]))


HEADER = "TEMPLATE_ID,SUBJECT_ID,FILE,MEDIA_ID,SIGHTING_ID,FACE_X,FACE_Y,FACE_WIDTH,FACE_HEIGHT"


def _ijba_tree(root, rng):
    """2 IJB-A splits over 48 subjects x 2 templates x 3 faces; the splits share 24 subjects, hence pairs."""
    faces = {t: [f"img/{3 * t + k}.jpg" for k in range(3)] for t in range(96)}  # template t: subject t // 2
    pairs_per_split = []
    for n, subjects in ((1, range(0, 36)), (2, range(12, 48))):
        templates = [t for s in subjects for t in (2 * s, 2 * s + 1)]
        rows = [f"{t},{t // 2},{f},{3 * t + k},0,1,2,30,40" for t in templates for k, f in enumerate(faces[t])]
        gallery = [r for i, r in enumerate(rows[:54]) if i % 6 < 3]  # 9 subjects enrolled, one template each
        probe = [r for i, r in enumerate(rows) if i >= 54 or i % 6 >= 3]
        for folder, name, listed in (("IJB-A_11_sets", "verify_metadata", rows),
                                     ("IJB-A_1N_sets", "search_gallery", gallery),
                                     ("IJB-A_1N_sets", "search_probe", probe)):
            (root / folder / f"split{n}").mkdir(parents=True, exist_ok=True)
            (root / folder / f"split{n}" / f"{name}_{n}.csv").write_text("\r\n".join([HEADER, *listed]) + "\r\n")
        i, j = np.triu_indices(len(templates), k=1)
        pairs = [(templates[a], templates[b]) for a, b in zip(i, j, strict=True)]
        pairs = [p if rng.random() < 0.5 else p[::-1] for p in pairs]  # the order of a pair does not matter
        (root / "IJB-A_11_sets" / f"split{n}" / f"verify_comparisons_{n}.csv").write_text(
            "".join(f"{a},{b}\r\n" for a, b in pairs))
        pairs_per_split.append(pairs)
    return faces, pairs_per_split


def test_ijba_pools_the_splits_template_pairs_counting_a_repeated_pair_once(tmp_path):
    """Mean pooling; scores recomputed by hand from the tree's templates; every pair of the 24 shared subjects'
    templates is in both splits."""
    rng = np.random.default_rng(3)
    faces, pairs_per_split = _ijba_tree(tmp_path / "ijba", rng)
    centre = rng.normal(size=(48, 16))
    names = sorted(f for fs in faces.values() for f in fs)
    subject = {f: t // 2 for t, fs in faces.items() for f in fs}
    feats = np.stack([centre[subject[n]] + rng.normal(scale=1.5, size=16) for n in names]).astype(np.float32)
    save_features(tmp_path / "f.npz", feats, names)
    cfg = compose_config("eval", ["protocol=ijba", f"features={tmp_path / 'f.npz'}", f"run_dir={tmp_path / 'ev'}",
                                  f"data.root={tmp_path / 'ijba'}", "plots=false", "protocol.pooling=mean"])
    evaluate_ijba(cfg)
    record = read_calibration(tmp_path / "ev" / "calibration.json")["sets"]["ijba"]

    row = {n: feats[i].astype(np.float64) for i, n in enumerate(names)}
    mean = {t: np.mean([row[f] for f in fs], axis=0) for t, fs in faces.items()}
    unit = {t: v / np.linalg.norm(v) for t, v in mean.items()}
    pairs = {(min(a, b), max(a, b)): (a // 2 == b // 2, float(unit[a] @ unit[b])) for ps in pairs_per_split
             for a, b in ps}
    same = np.array([v[0] for v in pairs.values()])
    scores = np.array([v[1] for v in pairs.values()])
    scored = sum(len(ps) for ps in pairs_per_split)
    assert record["pairs_of"] == "template" and record["splits"] == [1, 2] and "pooled" in record["pooled"]
    assert record["pairs_scored"] == scored and record["repeated_pairs_dropped"] == scored - len(pairs) == 48 * 47 // 2
    assert record["impostor_pairs"] == (~same).sum() and record["genuine_pairs"] == same.sum()
    for entry in record["thresholds"]:
        expected = _threshold(same, scores, entry["far"])
        assert entry["resolved"] == (expected is not None), entry
        if expected is not None:
            assert entry["threshold"] == pytest.approx(expected[0], abs=1e-9)
            assert entry["tar"] == pytest.approx(expected[1], abs=1e-9)
    assert [e["resolved"] for e in record["thresholds"]] == [True, True, True, False, False, False]


def _blufr_lists(folder, labels, trials, rng):
    """BLUFR list files for images P<label>_<k>.jpg: per trial a train set and a disjoint test = gallery + probe."""
    names = []
    for i, lab in enumerate(labels):
        names.append(f"P{lab}_{sum(labels[:i] == lab) + 1:04d}.jpg")
    folder.mkdir()
    (folder / "image_list.txt").write_text("\n".join(names) + "\n")
    (folder / "labels.txt").write_text("\n".join(map(str, labels)) + "\n")
    sets: dict[str, list[np.ndarray]] = {"train": [], "test": [], "gallery": [], "probe": []}
    for _ in range(trials):
        ids = rng.permutation(np.unique(labels))
        train, test = np.flatnonzero(np.isin(labels, ids[:4])), np.flatnonzero(np.isin(labels, ids[4:]))
        test = test[rng.random(len(test)) < 0.9]  # trials draw different subsets: their test sets overlap
        first = np.unique(labels[test], return_index=True)[1][::2]  # half the identities enrolled: open set
        sets["train"].append(train)
        sets["test"].append(test)
        sets["gallery"].append(test[first])
        sets["probe"].append(np.delete(test, first))
    for name, per in sets.items():
        lines = [str(trials)]
        for idx in per:
            lines += [str(len(idx)), *[f"{i + 1}, {names[i]}" for i in idx]]
        (folder / f"{name}_set.txt").write_text("\n".join(lines) + "\n")
    return [f"P{lab}/{n}" for lab, n in zip(labels, names, strict=True)], sets["test"]


def test_blufr_thresholds_are_the_mean_of_each_trials_all_pairs_thresholds(tmp_path):
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(1, 25), 4)
    paths, tests = _blufr_lists(tmp_path / "lists", labels, 3, rng)
    feats = (rng.normal(size=(24, 12))[labels - 1] + rng.normal(scale=1.2, size=(len(labels), 12))).astype(np.float32)
    save_features(tmp_path / "f.npz", feats, paths)
    cfg = compose_config("eval", ["protocol=blufr", f"features={tmp_path / 'f.npz'}", f"run_dir={tmp_path / 'ev'}",
                                  f"protocol.lists={tmp_path / 'lists'}", f"data.root={tmp_path}", "plots=false",
                                  "protocol.block=7"])
    evaluate_blufr(cfg)
    record = read_calibration(tmp_path / "ev" / "calibration.json")["sets"]["blufr"]
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    per_trial = []
    for test in tests:
        i, j = np.triu_indices(len(test), k=1)  # every pair of the trial's test images, no sampling
        scores = np.einsum("pd,pd->p", unit[test[i]], unit[test[j]]).astype(np.float64)
        per_trial.append((labels[test[i]] == labels[test[j]], scores))
    assert record["trials"] == 3 and record["pairs_of"] == "image" and "trial-wise" in record["pooled"]
    assert [t["impostor_pairs"] for t in record["trial_pairs"]] == [int((~s).sum()) for s, _ in per_trial]
    for entry in record["thresholds"]:
        found = [_threshold(same, scores, entry["far"]) for same, scores in per_trial]
        assert entry["resolved"] == all(f is not None for f in found), entry
        if entry["resolved"]:
            thresholds = np.array([f[0] for f in found])
            assert entry["threshold"] == pytest.approx(thresholds.mean(), abs=1e-6)
            assert entry["threshold_std"] == pytest.approx(thresholds.std(ddof=1), abs=1e-6)
            assert entry["tar"] == pytest.approx(np.mean([f[1] for f in found]), abs=1e-6)
    assert [e["resolved"] for e in record["thresholds"]] == [True, True, True, False, False, False]
