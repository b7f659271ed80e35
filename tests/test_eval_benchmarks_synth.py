"""The five-set benchmark (`eval bin`, `val.sets=five`) and RFW's fairness table (`eval rfw`) end to end: the synthetic
stand-ins `facetrain data synth` writes, a model that validated on them, `facetrain report` (slow: ~30 s on 2 cores;
tests/test_eval_benchmarks.py checks the same numbers on features files in the default suite)."""

import dataclasses
import json
import pickle
import shutil

import numpy as np
import pytest
from helpers import TINY_SPEC, compose_config, tiny_train_overrides
from hydra.utils import instantiate

from facetrain.data.synth import write_synthetic_data
from facetrain.eval.features.file import load_features
from facetrain.eval.metrics.roc import exact_k_threshold
from facetrain.eval.protocols.bin import FIVE_SETS, bin_folds
from facetrain.eval.protocols.lfw import parse_lfw_pairs

GROUPS = ("African", "Asian", "Caucasian", "Indian")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory):
    """<root>/synth with faces_synth (the five .bin sets, 40 pairs each) and rfw (four groups of 40 pairs)."""
    root = tmp_path_factory.mktemp("bench")
    spec = dataclasses.replace(TINY_SPEC, insightface=True, insightface_pairs_per_fold=2, rfw_pairs_per_fold=2,
                               rfw_identities_per_fold=3, rfw_max_images=3)
    write_synthetic_data(root / "synth", spec, workers=1)
    return root


@pytest.fixture(scope="module")
def model(bench_data, tmp_path_factory):
    """A tiny run that validated on the five-set preset while training (val.sets=five)."""
    from facetrain.train import train

    run = tmp_path_factory.mktemp("benchmodel") / "run"
    overrides = tiny_train_overrides(bench_data, run)
    overrides[overrides.index("val.every=0")] = "val.every=2"
    train(compose_config("train", [*overrides, "val.root=null", "val.sets=five", "val.metric=bin/five_mean/acc_mean"]))
    return run


def _evaluate(data, out, protocol, *overrides):
    cfg = compose_config("eval", [f"protocol={protocol}", f"paths.data={data}", f"run_dir={out}", "device=cpu",
                                  "progress=false", "num_workers=0", "cache=false", *overrides])
    return instantiate(cfg.protocol.evaluate)(cfg)


def test_synth_writes_the_five_sets_in_ten_folds_of_both_labels(bench_data):
    for name in FIVE_SETS:
        images, same = pickle.loads((bench_data / "synth" / "faces_synth" / f"{name}.bin").read_bytes())
        same = np.array(same)
        assert len(images) == 2 * len(same) == 80 and all(im[:2] == b"\xff\xd8" for im in images)  # JPEGs
        folds = bin_folds(len(same))
        assert all(same[folds == f].sum() == 2 and (~same[folds == f]).sum() == 2 for f in range(10)), name


def test_five_set_mean_is_the_mean_of_the_sets_and_training_logs_it(bench_data, model, tmp_path, capsys):
    got = _evaluate(bench_data, tmp_path / "bin", "bin", f"model={model}")  # protocol.paths=[five] by default
    per_set = [got[f"bin/{n}/acc_mean"] for n in FIVE_SETS]
    assert got["bin/five_mean/acc_mean"] == pytest.approx(np.mean(per_set), abs=1e-15)
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("lfw %"))
    assert header.split() == ["lfw", "%", "cfp_fp", "%", "agedb_30", "%", "calfw", "%", "cplfw", "%", "mean", "of",
                              "5", "%"]
    assert f"{100 * got['bin/five_mean/acc_mean']:.2f}" in out.split(header)[1].splitlines()[2]
    assert json.loads((tmp_path / "bin" / "metrics.json").read_text())["bin/five_mean/acc_mean"] == \
        got["bin/five_mean/acc_mean"]
    logged = json.loads((model / "metrics.json").read_text())  # validation at the last iteration: same weights
    assert logged["val/bin/five_mean/acc_mean"] == pytest.approx(
        np.mean([logged[f"val/bin/{n}/acc_mean"] for n in FIVE_SETS]), abs=1e-15)
    assert logged["val/bin/five_mean/acc_mean"] == pytest.approx(got["bin/five_mean/acc_mean"])


def test_present_extras_are_scored_but_stay_out_of_the_mean(bench_data, model, tmp_path):
    zoo = tmp_path / "zoo"
    shutil.copytree(bench_data / "synth" / "faces_synth", zoo)
    shutil.copy(zoo / "lfw.bin", zoo / "cfp_ff.bin")
    got = _evaluate(bench_data, tmp_path / "bin", "bin", f"model={model}", f"data.root={zoo}")
    assert got["bin/cfp_ff/acc_mean"] == got["bin/lfw/acc_mean"] and "bin/vgg2_fp/acc_mean" not in got
    assert got["bin/five_mean/acc_mean"] == pytest.approx(np.mean([got[f"bin/{n}/acc_mean"] for n in FIVE_SETS]))


def test_rfw_group_equals_eval_lfw_on_that_groups_tree(bench_data, model, tmp_path, capsys):
    rfw_root = bench_data / "synth" / "rfw"
    got = _evaluate(bench_data, tmp_path / "rfw", "rfw", f"model={model}")
    table = capsys.readouterr().out
    for group in GROUPS:
        lfw = _evaluate(bench_data, tmp_path / group, "lfw", f"model={model}", f"data.root={rfw_root / 'data' / group}",
                        f"protocol.pairs={rfw_root / 'txts' / group / f'{group}_pairs.txt'}")
        key = f"rfw/{group.lower()}"
        assert got[f"{key}/acc_mean"] == lfw["lfw/acc_mean"] and got[f"{key}/acc_std"] == lfw["lfw/acc_std"]
        assert got[f"{key}/auc"] == pytest.approx(lfw["lfw/auc"]) and got[f"{key}/pairs"] == 40
    accs = np.array([got[f"rfw/{g.lower()}/acc_mean"] for g in GROUPS])
    assert got["rfw/acc_mean"] == pytest.approx(accs.mean()) and got["rfw/acc_std"] == pytest.approx(accs.std())
    assert got["rfw/ser"] == pytest.approx((1 - accs).max() / (1 - accs).min())
    # TAR at one threshold: the exact-k threshold of all groups' impostors pooled, from the written features
    feats = load_features(tmp_path / "rfw" / "features_rfw.npz")
    scores, labels, group_of = [], [], []
    for group in GROUPS:
        pairs = parse_lfw_pairs(rfw_root / "txts" / group / f"{group}_pairs.txt")
        a = feats.select([f"data/{group}/{p}" for p in pairs.left])
        b = feats.select([f"data/{group}/{p}" for p in pairs.right])
        scores.append(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))
        labels.append(pairs.same)
        group_of += [group] * len(pairs.same)
    scores, labels, group_of = np.concatenate(scores), np.concatenate(labels), np.array(group_of)
    thr = exact_k_threshold(np.sort(scores[~labels])[::-1], 1e-3, scores[labels])
    assert got["rfw/threshold@far=0.001"] == pytest.approx(thr, abs=1e-6)
    for group in GROUPS:
        mine = group_of == group
        assert got[f"rfw/{group.lower()}/tar@far=0.001"] == pytest.approx(np.mean(scores[mine & labels] >= thr))
    assert "SER" in table and "all groups" in table


def test_report_shows_the_five_set_row_and_the_fairness_table(bench_data, model, tmp_path, capsys):
    from facetrain.report.build import build_report

    _evaluate(bench_data, tmp_path / "bin", "bin", f"model={model}")
    _evaluate(bench_data, tmp_path / "rfw", "rfw", f"model={model}")
    capsys.readouterr()
    report = build_report(compose_config("report", [f"dirs=[{model}]", f"out={tmp_path / 'report'}", "plots={}"]))
    text = report.table
    assert "Five-set benchmark" in text and "mean of 5 %" in text and "Fairness (RFW)" in text
    assert "bin/cfp_fp acc" not in text and "rfw/african acc" not in text  # per-set columns live in their tables
    metrics = json.loads((model / "metrics.json").read_text())
    row = next(line for line in text.splitlines() if "eval bin" in line)
    assert f"{100 * metrics['bin/five_mean/acc_mean']:.2f}" in row
    assert "## Fairness (RFW)" in report.markdown.read_text()
