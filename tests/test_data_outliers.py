"""`facetrain data outliers`: a sub-center ArcFace run's images far from their class's dominant sub-centre (the
released `drop.py`'s rule, recomputed here in numpy), written as an exclusion list the next run leaves out."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import compose_config, run_cli, tiny_train_overrides
from hydra.utils import instantiate
from omegaconf import OmegaConf

from facetrain.eval.outliers import read_outliers
from facetrain.losses.classifier.subcenter_arcface import dominant_subcenters
from facetrain.models.trained_run import TrainedRun
from facetrain.run.checkpoint import save_checkpoint
from facetrain.train import train


def _drop_py(features: np.ndarray, labels: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """drop.py's loop: per class, each image's nearest sub-centre votes; the most voted (np.argmax) is dominant."""
    x = features / np.linalg.norm(features, axis=1, keepdims=True)
    w = weight / np.linalg.norm(weight, axis=2, keepdims=True)
    dominant = np.zeros(len(w), dtype=np.int64)
    cosine = np.zeros(len(x))
    for c in np.unique(labels):
        mine = np.flatnonzero(labels == c)
        votes = np.zeros(w.shape[1], dtype=np.int64)
        for i in mine:
            votes[np.argmax(w[c] @ x[i])] += 1
        dominant[c] = np.argmax(votes)
        cosine[mine] = x[mine] @ w[c, dominant[c]]
    return dominant, cosine


def test_dominant_subcenters_follow_drop_py():
    g = torch.Generator().manual_seed(3)
    features, weight = torch.randn(40, 6, generator=g), torch.randn(5, 3, 6, generator=g)
    labels = torch.randint(0, 5, (40,), generator=g)
    dominant, cosine = dominant_subcenters(features, labels, weight, chunk=7)
    ref_dominant, ref_cosine = _drop_py(features.numpy(), labels.numpy(), weight.numpy())
    assert dominant.tolist() == ref_dominant.tolist() and len(set(ref_dominant.tolist())) > 1
    np.testing.assert_allclose(cosine.numpy(), ref_cosine, rtol=1e-5, atol=1e-6)
    # a tie of votes goes to the lower sub-centre, as np.argmax
    tie = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert dominant_subcenters(tie, torch.tensor([0, 0]), torch.eye(2).view(1, 2, 2))[0].tolist() == [0]


def test_outliers_are_listed_and_the_next_run_leaves_exactly_them_out(tiny_data, train_cfg, tmp_path):
    run = tmp_path / "sc"
    cfg = train_cfg("loss=subcenter_arcface", "loss.scale=16", run_dir=run)
    train(cfg)
    # the independent computation: the run's model and data, drop.py's rule in numpy
    trained = TrainedRun.open(run / "checkpoints" / "last.pt")
    dataset = instantiate(cfg.data.dataset)
    images = torch.stack([dataset[j][0] for j in range(len(dataset))])
    with torch.no_grad():
        features = trained.face_model(head=True)(images)[1].numpy()
    weight = trained.state["model"]["loss"]["weight"].numpy()
    assert weight.shape == (dataset.num_classes, 3, 16)
    _, cosine = _drop_py(features, np.asarray(dataset.labels), weight)
    angles = np.degrees(np.arccos(np.clip(cosine, -1, 1)))
    threshold = float(np.round(np.median(angles), 1))
    expected = {dataset._name(j) for j in np.flatnonzero(cosine <= math.cos(math.radians(threshold)))}
    assert 0 < len(expected) < len(dataset)

    proc = run_cli("data", "outliers", f"model={run}", f"outliers.threshold={threshold}", "outliers.workers=0",
                   "outliers.progress=false", "outliers.device=cpu", f"paths.runs={tmp_path / 'runs'}", cwd=tmp_path)
    listed = read_outliers(run / "outliers.tsv")
    assert f"outliers: {len(expected)} of {len(dataset)} training images" in proc.stdout
    assert {row[0] for row in listed} == expected and len(listed) == len(expected)
    by_name = {dataset._name(j): j for j in range(len(dataset))}
    for path, label, cos, angle in listed:
        j = by_name[path]
        assert label == dataset.classes[dataset.labels[j]] and path.startswith(label + "/")
        assert cos == pytest.approx(cosine[j], abs=2e-6) and angle == pytest.approx(angles[j], abs=2e-3)
        assert angle >= threshold - 1e-3
    assert [row[2] for row in listed] == sorted(row[2] for row in listed)  # the farthest first

    # the next run, with one override: every image but the listed ones
    after = instantiate(compose_config("train", tiny_train_overrides(tiny_data, tmp_path / "next") +
                                       [f"data.exclude={run / 'outliers.tsv'}"]).data.dataset)
    kept = {after._name(j) for j in range(len(after))}
    assert kept == set(by_name) - expected


def test_a_run_without_class_weights_is_refused_in_one_line(tmp_path):
    cfg = OmegaConf.create({"loss": {"_target_": "facetrain.losses.TripletLoss"}})
    save_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt",
                    {"config": OmegaConf.to_yaml(cfg), "model": {"loss": {}}, "iteration": 1})
    proc = run_cli("data", "outliers", f"model={tmp_path / 'r'}", f"paths.runs={tmp_path / 'runs'}", cwd=tmp_path,
                   check=False)
    assert proc.returncode == 2
    assert "trained with facetrain.losses.TripletLoss; `data outliers` needs a run of loss=subcenter_arcface" in proc.stderr
    proc = run_cli("data", "outliers", f"paths.runs={tmp_path / 'runs'}", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "data outliers needs model=RUN" in proc.stderr
