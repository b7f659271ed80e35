"""`make demo` / `make demo-gpu` (scripts/demo.py): the commands they run and the configs those compose to."""

import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import REPO, compose_config
from hydra.utils import instantiate

from facetrain.data.synth.trees import _TRAIN, _long_tail_counts
from facetrain.eval.features.file import save_features
from facetrain.eval.protocols.lfw import parse_lfw_pairs

demo = SimpleNamespace(**runpy.run_path(str(REPO / "scripts" / "demo.py")))


def _train_steps(steps):
    return {step[-1].removeprefix("hydra.run.dir=").split("/")[-1]: step[1:-1] for step in steps if step[0] == "train"}


def test_cpu_demo_commands_are_pinned():
    steps = demo.commands(demo.CPU, Path("runs/demo"))
    assert steps[0] == ["data", "synth", "paths.data=data/demo", "synth.image_size=[56,48]", "synth.blufr_trials=0",
                        "synth.ytf_splits=0", "synth.ijba_splits=0", "synth.ijbc_subjects=0", "synth.insightface=false"]
    shared = ["backbone=face_resnet_mini", "channels_last=true", "data.num_workers=0"]
    tail = ["paths.data=data/demo", "progress=false", "val.every=0"]
    assert _train_steps(steps) == {"softmax": [*shared, "loss=softmax", *tail],
                                   "l2softmax": [*shared, "loss=l2softmax", "alpha=auto", *tail]}
    assert [s[:3] for s in steps if s[0] == "eval"] == [["eval", "lfw", "model=runs/demo/softmax"],
                                                        ["eval", "lfw", "model=runs/demo/l2softmax"]]
    assert steps[-1] == ["report", "runs/demo/softmax", "runs/demo/l2softmax", "out=runs/demo", "x=alpha"]
    assert [s[0] for s in steps] == ["data", "train", "train", "eval", "eval", "report"]  # trains side by side


def test_cpu_demo_composes_the_papers_comparison_at_cpu_size():
    """Both losses at the papers' lr 0.1 on a BatchNorm-free Face-ResNet; L2-softmax at eq. 9's alpha (8.18)."""
    steps = demo.commands(demo.CPU, Path("runs/demo"), seed=3)
    data = compose_config("data", steps[0][2:])
    assert (list(data.synth.image_size), data.synth.train_identities, data.synth.out) == ([56, 48], 400, "data/demo/synth")
    cfgs = {name: compose_config("train", [*overrides, "run_dir=/tmp/unused"])
            for name, overrides in _train_steps(steps).items()}
    for cfg in cfgs.values():
        assert (cfg.optim.lr, cfg.batch_size, cfg.iterations, cfg.seed, list(cfg.input_size)) == (0.1, 64, 800, 3, [56, 48])
        assert cfg.data.root == "data/demo/synth/casia"
    assert cfgs["softmax"].head._target_ == "facetrain.heads.IdentityHead"
    assert (cfgs["l2softmax"].head._target_, cfgs["l2softmax"].alpha) == ("facetrain.heads.L2ScaleHead", "auto")
    with torch.device("meta"):
        backbone = instantiate(cfgs["softmax"].backbone)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in backbone.modules())


def test_gpu_demo_is_the_1000_identity_experiment():
    steps = demo.commands(demo.GPU, Path("runs/demo_gpu"))
    data = compose_config("data", steps[0][2:])
    assert data.synth.train_identities == 1000
    assert data.synth.lfw_folds * data.synth.lfw_pairs_per_fold * 2 == 6000  # the 6,000-pair protocol
    assert data.synth.out == "data/demo_gpu/synth"
    counts = _long_tail_counts(np.random.default_rng([data.synth.seed, _TRAIN]), data.synth.train_identities,
                               data.synth.train_min_images, data.synth.train_max_images + 1)
    assert sum(counts) == 24_462  # the set the GPU demo's published numbers were measured on
    runs = _train_steps(steps)
    assert list(runs) == ["softmax", "l2softmax_a8", "l2softmax_auto"]
    cfgs = {name: compose_config("train", [*overrides, "run_dir=/tmp/unused"]) for name, overrides in runs.items()}
    for cfg in cfgs.values():
        assert (cfg.batch_size, cfg.iterations, cfg.embedding_dim, list(cfg.input_size)) == (256, 900, 512, [112, 96])
        assert cfg.data.root == "data/demo_gpu/synth/casia"
        assert cfg.val.every == 0
    assert (cfgs["softmax"].head._target_, cfgs["softmax"].optim.lr) == ("facetrain.heads.IdentityHead", 0.05)
    assert [(cfgs[n].alpha, cfgs[n].optim.lr) for n in ("l2softmax_a8", "l2softmax_auto")] == [(8, 0.1), ("auto", 0.1)]
    assert {cfgs[n].head._target_ for n in ("l2softmax_a8", "l2softmax_auto")} == {"facetrain.heads.L2ScaleHead"}
    evals = [s for s in steps if s[0] == "eval"]
    assert all("paths.data=data/demo_gpu" in s for s in evals) and len(evals) == 3


def test_gpu_demo_backbone_is_face_resnet27_with_fc512():
    overrides = _train_steps(demo.commands(demo.GPU, Path("runs/demo_gpu")))["softmax"]
    backbone = instantiate(compose_config("train", [*overrides, "run_dir=/tmp/unused"]).backbone)
    assert sum(p.numel() for p in backbone.parameters()) == 27_536_800  # Ranjan et al. 2017's Face-ResNet + FC-512


def _eval_run(out: Path, name: str, wrong: dict[int, int], pairs) -> None:
    """A run whose features get every pair right except `wrong[fold]` matched pairs of each fold."""
    rng = np.random.default_rng(0)
    feats = {}
    for left, right, same in zip(pairs.left, pairs.right, pairs.same, strict=True):
        feats.setdefault(left, rng.normal(size=8))
        feats[right] = feats[left] + 0.01 * rng.normal(size=8) if same else rng.normal(size=8)
    for fold, count in wrong.items():  # a matched pair whose right image points away: scored as different
        for i in np.flatnonzero(pairs.same & (pairs.fold == fold))[:count]:
            feats[pairs.right[i]] = -feats[pairs.left[i]]
    (out / name / "eval_lfw").mkdir(parents=True)
    save_features(out / name / "eval_lfw" / "features_lfw.npz", np.stack(list(feats.values())), list(feats))


def test_gain_lines_are_paired_over_the_folds(tmp_path):
    pairs_file = tmp_path / "pairs.txt"
    lines = ["10\t5"]
    for fold in range(10):  # each fold: 5 matched pairs, then 5 mismatched, on names of its own
        lines += [f"m{fold}_{i}\t1\t2" for i in range(5)]
        lines += [f"a{fold}_{i}\t1\tb{fold}_{i}\t1" for i in range(5)]
    pairs_file.write_text("\n".join(lines) + "\n")
    pairs = parse_lfw_pairs(pairs_file)
    _eval_run(tmp_path, "softmax", {0: 2, 1: 1, 2: 1}, pairs)  # 2, 1, 1 of 10 pairs wrong in folds 0-2
    _eval_run(tmp_path, "l2softmax", {}, pairs)  # all right
    _eval_run(tmp_path, "l2softmax_bad", {f: 1 for f in range(10)}, pairs)  # one pair wrong in every fold
    soft = demo.fold_accuracies(tmp_path / "softmax" / "eval_lfw", pairs_file)
    assert soft.tolist() == [0.8, 0.9, 0.9, *[1.0] * 7]  # thresholds from the other folds keep the errors
    got = demo.gain_lines(tmp_path, ["softmax", "l2softmax", "l2softmax_bad"], pairs_file)
    diff = np.array([20, 10, 10, *[0] * 7])  # percentage points per fold; the paired se is their std / sqrt(10)
    se = diff.std(ddof=1) / np.sqrt(10)
    assert se == pytest.approx(2.2110832)  # sqrt((16² + 2·6² + 7·4²) / 9) / sqrt(10)
    bad = np.array([10, 0, 0, *[-10] * 7])
    assert got == [f"l2softmax - softmax: +4.00 ± {se:.2f} points LFW accuracy, paired over the 10 folds "
                   "(within 2 standard errors: noise)",
                   f"l2softmax_bad - softmax: -6.00 ± {bad.std(ddof=1) / np.sqrt(10):.2f} points LFW accuracy, "
                   "paired over the 10 folds (more than 2 standard errors)"]


def test_gain_lines_without_a_scored_softmax_run_are_empty(tmp_path):
    (tmp_path / "softmax").mkdir()
    assert demo.gain_lines(tmp_path, ["softmax", "l2softmax"], tmp_path / "pairs.txt") == []
