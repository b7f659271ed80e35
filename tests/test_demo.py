"""`make demo` / `make demo-gpu` (scripts/demo.py): the commands they run and the configs those compose to."""

import json
import math
import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import REPO, compose_config
from hydra.utils import instantiate

from facetrain.data.synth.trees import _TRAIN, _long_tail_counts

demo = SimpleNamespace(**runpy.run_path(str(REPO / "scripts" / "demo.py")))


def _train_steps(steps):
    return {step[-1].removeprefix("hydra.run.dir=").split("/")[-1]: step[1:-1] for step in steps if step[0] == "train"}


def test_cpu_demo_commands_are_pinned():
    steps = demo.commands(demo.CPU, Path("runs/demo"))
    assert steps[0] == ["data", "synth"]
    assert _train_steps(steps) == {
        "softmax": ["loss=softmax", "progress=false", "val.every=0"],
        "l2softmax": ["loss=l2softmax", "alpha=16", "progress=false", "val.every=0"]}
    assert [s[:3] for s in steps if s[0] == "eval"] == [["eval", "lfw", "model=runs/demo/softmax"],
                                                        ["eval", "lfw", "model=runs/demo/l2softmax"]]
    assert steps[-1] == ["report", "runs/demo/softmax", "runs/demo/l2softmax", "out=runs/demo", "x=alpha"]


def test_gpu_demo_is_the_1000_identity_experiment():
    steps = demo.commands(demo.GPU, Path("runs/demo_gpu"))
    data = compose_config("data", steps[0][2:])
    assert data.synth.train_identities == 1000
    assert data.synth.lfw_folds * data.synth.lfw_pairs_per_fold * 2 == 6000  # the 6,000-pair protocol
    assert data.synth.out == "data/demo_gpu/synth"
    counts = _long_tail_counts(np.random.default_rng([data.synth.seed, _TRAIN]), data.synth.train_identities,
                               data.synth.train_min_images, data.synth.train_max_images + 1)
    assert sum(counts) == 24_462  # issue 13's set
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
    assert sum(p.numel() for p in backbone.parameters()) == 27_536_800  # l2-softmax.md's Face-ResNet + FC-512


def _run(out: Path, name: str, mean: float, stderr: float) -> None:
    (out / name).mkdir(parents=True)
    (out / name / "metrics.json").write_text(json.dumps({"lfw/acc_mean": mean, "lfw/acc_stderr": stderr}))


def test_gain_lines_state_the_standard_error_of_the_difference(tmp_path):
    _run(tmp_path, "softmax", 0.9545, 0.003)
    _run(tmp_path, "l2softmax_a8", 0.9785, 0.004)  # +2.40 points, se 0.5: more than 2 standard errors
    _run(tmp_path, "l2softmax_a16", 0.9600, 0.004)  # +0.55 points, se 0.5: noise
    lines = demo.gain_lines(tmp_path, ["softmax", "l2softmax_a8", "l2softmax_a16"])
    se = 100 * math.sqrt(0.003**2 + 0.004**2)
    assert se == pytest.approx(0.5)
    assert lines == ["l2softmax_a8 - softmax: +2.40 ± 0.50 points LFW accuracy (more than 2 standard errors)",
                     "l2softmax_a16 - softmax: +0.55 ± 0.50 points LFW accuracy (within 2 standard errors: noise)"]


def test_gain_lines_without_a_scored_softmax_run_are_empty(tmp_path):
    _run(tmp_path, "l2softmax", 0.91, 0.005)
    (tmp_path / "softmax").mkdir()
    (tmp_path / "softmax" / "metrics.json").write_text("{}")
    assert demo.gain_lines(tmp_path, ["softmax", "l2softmax"]) == []
