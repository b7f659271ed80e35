"""The five-set row (`eval bin`) and RFW's fairness table (`eval rfw`) from features files: the five-set mean is the
mean of the sets, each RFW group is `eval lfw` on that group alone, TAR is read at one pooled threshold, and
`facetrain report` shows both tables. (End to end on synthetic images: test_eval_benchmarks_synth.py, slow.)"""

import json

import numpy as np
import pytest
from bin_helpers import write_py3_bin
from helpers import compose_config
from hydra.utils import instantiate

from facetrain.eval.features.file import save_features
from facetrain.eval.metrics.roc import exact_k_threshold
from facetrain.eval.protocols.bin import FIVE_SETS, five_row
from facetrain.eval.tables import format_table

GROUPS = ("African", "Asian", "Caucasian", "Indian")


def _evaluate(tmp_path, out, protocol, *overrides):
    cfg = compose_config("eval", [f"protocol={protocol}", f"paths.data={tmp_path}", f"run_dir={out}", "plots=false",
                                  "model=nowhere", *overrides])
    return instantiate(cfg.protocol.evaluate)(cfg)


def _pair_features(rng, same, dim=8, noise=1.0):
    left = rng.normal(size=(len(same), dim))
    right = np.where(same[:, None], left + rng.normal(scale=noise, size=left.shape), rng.normal(size=left.shape))
    return left, right


def _zoo(tmp_path, names, seed=0, pairs=60):
    """names.bin (stand-in bytes: a features file replaces the images) and one features file for all of them."""
    rng = np.random.default_rng(seed)
    zoo, keys, rows = tmp_path / "zoo", [], []
    zoo.mkdir(exist_ok=True)
    for k, name in enumerate(names):
        same = np.arange(pairs) % 4 < 2  # both labels in every fold of 6 consecutive pairs
        left, right = _pair_features(rng, same, noise=0.6 + 0.2 * k)
        write_py3_bin(zoo / f"{name}.bin", [b"jpeg"] * 2 * pairs, [bool(s) for s in same])
        keys += [f"{name}/{i}" for i in range(2 * pairs)]
        rows += [r for pair in zip(left, right, strict=True) for r in pair]
    save_features(tmp_path / "features_bin.npz", np.array(rows), keys)
    return zoo


def test_five_set_mean_is_the_mean_of_the_per_set_results(tmp_path, capsys):
    zoo = _zoo(tmp_path, FIVE_SETS)
    got = _evaluate(tmp_path, tmp_path / "out", "bin", f"data.root={zoo}", f"features={tmp_path / 'features_bin.npz'}")
    per_set = [got[f"bin/{n}/acc_mean"] for n in FIVE_SETS]
    assert len(set(per_set)) > 1 and got["bin/five_mean/acc_mean"] == pytest.approx(np.mean(per_set), abs=1e-15)
    headers, rows = five_row(got)
    assert headers == ["lfw %", "cfp_fp %", "agedb_30 %", "calfw %", "cplfw %", "mean of 5 %"]
    assert rows == [[f"{100 * v:.2f}" for v in [*per_set, np.mean(per_set)]]]
    assert format_table(headers, rows) in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["bin/five_mean/acc_mean"] == \
        got["bin/five_mean/acc_mean"]


def test_extras_are_scored_when_present_but_stay_out_of_the_mean(tmp_path):
    zoo = _zoo(tmp_path, [*FIVE_SETS, "vgg2_fp"])
    got = _evaluate(tmp_path, tmp_path / "out", "bin", f"data.root={zoo}", f"features={tmp_path / 'features_bin.npz'}")
    assert "bin/vgg2_fp/acc_mean" in got and "bin/cfp_ff/acc_mean" not in got
    assert got["bin/five_mean/acc_mean"] == pytest.approx(np.mean([got[f"bin/{n}/acc_mean"] for n in FIVE_SETS]))
    assert five_row(got)[0][-2:] == ["vgg2_fp %", "mean of 5 %"]
    some = _evaluate(tmp_path, tmp_path / "two", "bin", f"data.root={zoo}", "protocol.paths=[lfw,calfw]",
                     f"features={tmp_path / 'features_bin.npz'}")  # names looked up in data.root; no mean
    assert some["bin/calfw/acc_mean"] == got["bin/calfw/acc_mean"] and "bin/five_mean/acc_mean" not in some


def _rfw_tree(tmp_path, seed=1, n=5):
    """txts/<Group>/<Group>_pairs.txt (no header, 10 folds of n + n) and features of data/<Group>/<id>/<id>_k.jpg;
    the groups differ in how far apart a person's two images lie."""
    rng = np.random.default_rng(seed)
    root, keys, rows = tmp_path / "rfw", [], []
    for g, group in enumerate(GROUPS):
        lines = []
        for fold in range(10):
            people = [f"m.0{group[:2].lower()}{fold}{p}" for p in range(2 * n)]
            lines += [f"{people[p]}\t1\t2" for p in range(n)]
            lines += [f"{people[n + p]}\t1\t{people[(n + p + 1) % (2 * n) or n]}\t2" for p in range(n)]
            for person in people:
                base = rng.normal(size=8)
                for k in (1, 2):
                    keys.append(f"data/{group}/{person}/{person}_{k:04d}.jpg")
                    rows.append(base + rng.normal(scale=0.5 + 0.3 * g, size=8))
        pairs = root / "txts" / group / f"{group}_pairs.txt"
        pairs.parent.mkdir(parents=True)
        pairs.write_text("\n".join(lines) + "\n")
    save_features(tmp_path / "features_rfw.npz", np.array(rows), keys)
    return root, dict(zip(keys, rows, strict=True))


def test_rfw_group_is_eval_lfw_on_that_group_alone_and_tar_uses_one_threshold(tmp_path, capsys):
    root, rows = _rfw_tree(tmp_path)
    got = _evaluate(tmp_path, tmp_path / "rfw_out", "rfw", f"data.root={root}",
                    f"features={tmp_path / 'features_rfw.npz'}", "protocol.fars=[0.01]")
    table = capsys.readouterr().out
    scores, labels, group_of = [], [], []
    for group in GROUPS:
        prefix = f"data/{group}/"  # the group's tree alone: its features keyed as `eval lfw` keys them
        mine = [k for k in rows if k.startswith(prefix)]
        save_features(tmp_path / f"{group}.npz", np.array([rows[k] for k in mine]), [k[len(prefix):] for k in mine])
        pairs = root / "txts" / group / f"{group}_pairs.txt"
        lfw = _evaluate(tmp_path, tmp_path / group, "lfw", f"data.root={root / 'data' / group}",
                        f"protocol.pairs={pairs}", f"features={tmp_path / f'{group}.npz'}")
        key = f"rfw/{group.lower()}"
        assert got[f"{key}/acc_mean"] == lfw["lfw/acc_mean"] and got[f"{key}/acc_std"] == lfw["lfw/acc_std"]
        assert got[f"{key}/auc"] == lfw["lfw/auc"] and got[f"{key}/pairs"] == lfw["lfw/pairs"] == 100
        for line in pairs.read_text().splitlines():  # the group's cosine scores, for the pooled threshold
            f = line.split("\t")
            name1, num1, name2, num2 = (f[0], f[1], f[0], f[2]) if len(f) == 3 else f
            u = rows[f"{prefix}{name1}/{name1}_{int(num1):04d}.jpg"]
            v = rows[f"{prefix}{name2}/{name2}_{int(num2):04d}.jpg"]
            scores.append(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
            labels.append(len(f) == 3)
            group_of.append(group)
    accs = np.array([got[f"rfw/{g.lower()}/acc_mean"] for g in GROUPS])
    assert len(set(accs)) > 1
    assert got["rfw/acc_mean"] == pytest.approx(accs.mean()) and got["rfw/acc_std"] == pytest.approx(accs.std())
    assert got["rfw/ser"] == pytest.approx((1 - accs).max() / (1 - accs).min()) and got["rfw/ser"] > 1
    scores, labels, group_of = np.array(scores), np.array(labels), np.array(group_of)
    thr = exact_k_threshold(np.sort(scores[~labels])[::-1], 0.01, scores[labels])  # 2,000 impostors: k = 20
    assert got["rfw/threshold@far=0.01"] == pytest.approx(thr, abs=1e-6)
    assert got["rfw/far@far=0.01"] == pytest.approx(np.mean(scores[~labels] >= thr - 1e-9))
    for group in GROUPS:
        mine = group_of == group
        assert got[f"rfw/{group.lower()}/tar@far=0.01"] == pytest.approx(np.mean(scores[mine & labels] >= thr - 1e-9))
        assert got[f"rfw/{group.lower()}/far@far=0.01"] == pytest.approx(np.mean(scores[mine & ~labels] >= thr - 1e-9))
    assert "all groups" in table and f"SER {got['rfw/ser']:.2f}" in table


def test_report_shows_the_five_set_row_and_the_fairness_table(tmp_path):
    from facetrain.report.build import build_report

    zoo = _zoo(tmp_path, FIVE_SETS)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    _evaluate(tmp_path, run, "bin", f"data.root={zoo}", f"features={tmp_path / 'features_bin.npz'}")
    root, _ = _rfw_tree(tmp_path)
    _evaluate(tmp_path, run, "rfw", f"data.root={root}", f"features={tmp_path / 'features_rfw.npz'}")
    metrics = json.loads((run / "metrics.json").read_text())
    report = build_report(compose_config("report", [f"dirs=[{run}]", f"out={tmp_path / 'report'}", "plots={}"]))
    five = report.table.split("Five-set benchmark")[1].splitlines()
    assert five[1].split() == ["job", "from", "lfw", "%", "cfp_fp", "%", "agedb_30", "%", "calfw", "%", "cplfw", "%",
                               "mean", "of", "5", "%"]
    assert five[3].split()[-1] == f"{100 * metrics['bin/five_mean/acc_mean']:.2f}"
    fair = report.table.split("Fairness (RFW)")[1].splitlines()
    assert fair[3].split()[1:5] == [f"{100 * metrics[f'rfw/{g.lower()}/acc_mean']:.2f}" for g in GROUPS]
    assert fair[3].split()[7] == f"{metrics['rfw/ser']:.2f}"
    assert "bin/cfp_fp acc" not in report.table and "rfw/african acc" not in report.table  # in their own tables
    assert "## Fairness (RFW)" in report.markdown.read_text()
