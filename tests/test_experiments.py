"""Experiment presets (configs/experiment): each composes, its *_synth twin trains, and precedence holds
(backbone defaults < experiment < command line); the 2-D experiment's features and scatter plot."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_helpers import write_digits_csv
from helpers import REPO, compose_config, run_cli, tiny_train_overrides
from hydra.utils import instantiate

from facetrain.data import Mnist5k
from facetrain.errors import FacetrainError
from facetrain.eval.protocols.features2d import evaluate_features2d
from facetrain.run.checkpoint import load_checkpoint
from facetrain.run.metrics_file import read_metrics
from facetrain.train import train
from facetrain.train.config_checks import check_train_config

PRESETS = sorted(p.stem for p in (REPO / "configs" / "experiment").glob("*.yaml") if not p.stem.startswith("_"))
PAPER = [p for p in PRESETS if not p.endswith("_synth")]
TWINS = [p for p in PRESETS if p.endswith("_synth")]


def test_every_paper_preset_has_a_synth_twin():
    assert len(PAPER) >= 8 and sorted(f"{p}_synth" for p in PAPER) == TWINS


@pytest.fixture(scope="module")
def default_cfg():
    return compose_config("train", [])


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_and_differs_from_the_defaults(preset, default_cfg):
    cfg = compose_config("train", [f"experiment={preset}"])
    assert cfg != default_cfg
    check_train_config(cfg)  # the up-front checks accept every preset as shipped
    if preset in PAPER:  # the papers' models: never the demo's small CNN
        assert not cfg.backbone._target_.endswith("SmallFaceCNN") and cfg.embedding_dim in (2, 512)
    else:  # CPU-sized
        assert cfg.iterations <= 1500 and cfg.batch_size <= 128


def test_experiment_beats_the_groups_and_the_command_line_beats_the_experiment():
    cfg = compose_config("train", ["experiment=l2softmax_alpha"])
    assert (cfg.embedding_dim, list(cfg.input_size), cfg.iterations, cfg.data.max_identities) == (512, [128, 128],
                                                                                                 28000, 13403)
    with torch.device("meta"):
        model = instantiate(cfg.backbone)
    assert sum(p.numel() for p in model.parameters()) == 31_731_104  # Face-ResNet-27 at 128x128 (fc5 reads 6x6x512)
    assert cfg.head._target_.endswith("L2ScaleHead") and list(cfg.schedule.milestones) == [16000, 24000]
    cfg = compose_config("train", ["experiment=l2softmax_alpha_synth", "alpha=8", "iterations=70", "embedding_dim=32"])
    assert (cfg.alpha, cfg.iterations, cfg.embedding_dim, list(cfg.input_size)) == (8, 70, 32, [56, 48])
    assert cfg.head._target_.endswith("L2ScaleHead") and list(cfg.schedule.milestones) == [40, 60]


def _twin_overrides(preset: str, tiny_data, run_dir, csv) -> list[str]:
    """The tiny test sizes: 2 iterations of 8 images; the small CNN narrowed, LeNet++ on a tiny digits file."""
    base = [o for o in tiny_train_overrides(tiny_data, run_dir) if not o.startswith("backbone.channels")]
    base += ["iterations=2", "input_size=[32,32]", "val.every=0"]
    cfg = compose_config("train", [f"experiment={preset}"])
    if cfg.backbone._target_.endswith("SmallFaceCNN"):
        base.append("backbone.channels=[4,8,8,16]")
    if cfg.get("finetune", {}).get("needs_init_from"):  # test_finetune.py starts it from a run
        base.append("finetune.needs_init_from=false")
    if "csv" in cfg.data.dataset:  # LeNet++ keeps its 2-D feature
        base = [o for o in base if not o.startswith("embedding_dim=")] + [f"data.dataset.csv={csv}", "input_size=[28,28]"]
    return [f"experiment={preset}", *base]


@pytest.mark.parametrize("preset", [pytest.param(p, marks=pytest.mark.slow) if "101" in p else p for p in TWINS])
def test_synth_twin_trains_two_iterations(preset, tiny_data, tmp_path):
    run = tmp_path / "run"
    csv = write_digits_csv(tmp_path / "digits.csv.gz")
    metrics = train(compose_config("train", _twin_overrides(preset, tiny_data, run, csv)))
    assert np.isfinite(metrics["train/loss"]) and load_checkpoint(run / "checkpoints" / "last.pt")["iteration"] == 2


def test_mnist5k_split_and_bad_file(tmp_path):
    csv = write_digits_csv(tmp_path / "d.csv.gz", n=20)
    train_set, test_set = Mnist5k("train", csv=csv), Mnist5k("test", csv=csv, channels=3)
    assert (len(train_set), len(test_set)) == (16, 4)
    assert test_set.labels.tolist() == [0, 1, 2, 3] and train_set.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    image, label = test_set[3]
    assert image.shape == (3, 28, 28) and image.dtype == torch.uint8 and int(image[0, 0, 0]) == 60 and label == 3
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(FacetrainError, match="785"):
        Mnist5k(csv=bad)


def test_features2d_has_two_columns_the_trained_classifiers_accuracy_and_a_scatter(tiny_data, tmp_path):
    run, out = tmp_path / "run", tmp_path / "eval"
    csv = write_digits_csv(tmp_path / "digits.csv.gz")
    train(compose_config("train", [*_twin_overrides("lenet_mnist_synth", tiny_data, run, csv), "iterations=3"]))
    cfg = compose_config("eval", [f"paths.data={tiny_data}", "protocol=features2d", f"model={run}", f"run_dir={out}",
                                  "device=cpu"])
    metrics = evaluate_features2d(cfg)
    saved = np.load(out / "features2d.npz")
    features, labels = saved["features"], saved["labels"]
    assert features.shape == (8, 2) and labels.tolist() == list(range(8))
    classifier = load_checkpoint(run / "checkpoints" / "last.pt")["model"]["loss"]  # softmax: head is identity
    logits = features @ classifier["classifier.weight"].numpy().T + classifier["classifier.bias"].numpy()
    assert metrics["features2d/acc"] == pytest.approx(np.mean(logits.argmax(1) == labels))
    assert metrics["features2d/norm_mean"] == pytest.approx(np.linalg.norm(features, axis=1).mean(), rel=1e-6)
    means = saved["class_means"]  # unit directions of the training digits' classes 0-7 (8, 9 absent: zeros)
    assert means.shape == (10, 2) and np.allclose(np.linalg.norm(means, axis=1), [1] * 8 + [0, 0], atol=1e-6)
    cosines = (features / np.linalg.norm(features, axis=1, keepdims=True)) @ means.T
    assert metrics["features2d/acc_ncm"] == pytest.approx(np.mean(cosines.argmax(1) == labels))
    assert (out / "features2d.png").stat().st_size > 1000
    assert read_metrics(run)["features2d/acc"] == metrics["features2d/acc"]  # the model's run gains it too


@pytest.mark.slow
def test_multirun_selects_the_experiment_from_the_command_line(tiny_data, tmp_path):
    overrides = [o for o in _twin_overrides("l2softmax_alpha_synth", tiny_data, tmp_path / "x", "x")
                 if not o.startswith(("run_dir=", "experiment="))]
    run_cli("train", "-m", "experiment=l2softmax_alpha_synth", "alpha=4,8", *overrides,
            f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    jobs = sorted((tmp_path / "sweep").rglob("checkpoints/last.pt"))  # job dirs nest: overrides hold paths
    assert len(jobs) == 2
    assert [load_checkpoint(j)["model"]["head"].get("alpha", torch.tensor(0.0)).item() for j in jobs] == [4.0, 8.0]


def test_features2d_refuses_a_model_without_a_test_split(train_cfg, tiny_data, tmp_path):
    run = tmp_path / "run"
    train(train_cfg("iterations=1", run_dir=run))  # synthetic faces: a folder tree, no test split
    cfg = compose_config("eval", [f"paths.data={tiny_data}", "protocol=features2d", f"model={run}",
                                  f"run_dir={tmp_path / 'eval'}", "device=cpu"])
    with pytest.raises(FacetrainError, match="without a test split"):
        evaluate_features2d(cfg)
