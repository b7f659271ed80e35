"""Losses in training: CombinedLoss, per-parameter lr / weight-decay multipliers, the P x K sampler, and
learnability — every loss config trains on the tiny synthetic data to far above chance."""

import json
from collections import Counter
from functools import partial

import pytest
import torch
from helpers import REPO
from omegaconf import OmegaConf

from facetrain.data.samplers.pk import PKBatchSampler
from facetrain.errors import FacetrainError
from facetrain.losses import CombinedLoss, RingLoss, SoftmaxLoss
from facetrain.run.checkpoint import load_checkpoint
from facetrain.train import train
from facetrain.train.build import build_parts, named_parts, param_groups

LOSSES = sorted(p.stem for p in (REPO / "configs" / "loss").glob("*.yaml"))


def _combined():
    terms = {"softmax": {"weight": 1.0, "loss": SoftmaxLoss},
             "ring": {"weight": 0.5, "loss": partial(RingLoss, radius_init=2.0)}}
    return CombinedLoss(4, 3, terms)


def test_combined_loss_weights_and_terms():
    loss = _combined()
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    out = loss(x, y)
    soft, ring = loss.terms["softmax"](x, y), loss.terms["ring"](x, y)
    assert out.total.item() == pytest.approx(soft.total.item() + 0.5 * ring.total.item(), rel=1e-6)
    assert set(out.terms) == {"softmax", "ring"} and out.terms["ring"].item() == pytest.approx(ring.total.item())
    assert out.correct is not None and out.correct == soft.correct and loss.scalars() == {"ring_radius": 2.0}
    with pytest.raises(FacetrainError, match="loss"):
        CombinedLoss(4, 3, {"x": {"weight": 1.0}})
    with pytest.raises(FacetrainError, match="_partial_"):  # a term config Hydra did not instantiate
        CombinedLoss(4, 3, {"x": {"loss": OmegaConf.create({"_target_": "facetrain.losses.SoftmaxLoss"})}})


def test_param_groups_apply_multipliers():
    model = torch.nn.ModuleDict({"loss": _combined(), "head": torch.nn.Linear(2, 2)})
    groups = param_groups(model, lr=0.1, weight_decay=1e-3)
    by_param = {id(p): g for g in groups for p in g["params"]}
    radius = model["loss"].terms["ring"].radius
    assert by_param[id(radius)]["lr"] == pytest.approx(0.2) and by_param[id(radius)]["weight_decay"] == 0.0
    weight = model["head"].weight
    assert by_param[id(weight)]["lr"] == pytest.approx(0.1) and by_param[id(weight)]["weight_decay"] == 1e-3
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_pk_sampler_is_balanced_and_resumable():
    labels = [c for c in range(7) for _ in range(2 + c)]  # identity 0 has 2 images: drawn with replacement
    sampler = PKBatchSampler(labels, batch_size=12, samples_per_identity=4, seed=5)
    stream = iter(sampler)
    batches = [next(stream) for _ in range(20)]
    for batch in batches:
        counts = Counter(labels[i] for i in batch)
        assert len(counts) == 3 and set(counts.values()) == {4}
    resumed = iter(PKBatchSampler(labels, 12, 4, seed=5, start_iteration=13))
    assert [next(resumed) for _ in range(7)] == batches[13:]
    assert batches != [PKBatchSampler(labels, 12, 4, seed=6).batch(i) for i in range(20)]
    with pytest.raises(FacetrainError, match="multiple"):
        PKBatchSampler(labels, 10, 4)
    with pytest.raises(FacetrainError, match="identities"):
        PKBatchSampler(labels, 40, 4)


def test_trainer_uses_pk_batches_for_pair_losses(train_cfg, tmp_path, monkeypatch):
    from facetrain.train import loader

    seen = []
    real = loader.batch_sampler
    monkeypatch.setattr(loader, "batch_sampler", lambda *a: seen.append(real(*a)) or seen[-1])
    train(train_cfg("loss=triplet", "iterations=2", run_dir=tmp_path / "r"))
    assert isinstance(seen[0], PKBatchSampler) and seen[0].k == 4


def test_loss_scalars_reach_metrics(train_cfg, tmp_path):
    train(train_cfg("loss=normface", "iterations=2", run_dir=tmp_path / "r"))
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["train/s"] > 0 and metrics["train/loss_bound"] > 0 and "train/loss/normface" in metrics


def _evaluate(cfg, checkpoint=None) -> tuple[float | None, float]:
    """(training-set accuracy from the loss's `correct` or None, the loss over the whole training set), eval mode.

    Without a checkpoint: the initial weights (train() seeds torch the same way before building).
    """
    from hydra.utils import instantiate

    dataset = instantiate(cfg.data.dataset)
    torch.manual_seed(int(cfg.seed))
    model, loss = build_parts(cfg, dataset.num_classes)
    parts = named_parts(model, loss)
    if checkpoint is not None:
        for name, state in load_checkpoint(checkpoint)["model"].items():
            parts[name].load_state_dict(state)
    model.eval(), loss.eval()
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    labels = torch.as_tensor(dataset.labels)
    with torch.no_grad():
        out = loss(model(images)[1], labels)
    acc = None if out.correct is None else out.correct.item() / len(labels)
    return acc, out.total.item()


# half-size crops keep a run at a few seconds on a free CPU; P x K losses get 3 identities x 4 images
LEARN = ["batch_size=12", "optim.lr=0.05", "data.hflip=false", "input_size=[56,48]", "log_every=10"]


def _check_learns(loss, train_cfg, tmp_path, iterations: int):
    cfg = train_cfg(f"loss={loss}", *LEARN, f"iterations={iterations}", f"checkpoint_every={iterations}",
                    run_dir=tmp_path / loss)
    _, before = _evaluate(cfg)
    train(cfg)
    acc, after = _evaluate(cfg, tmp_path / loss / "checkpoints" / "last.pt")
    if acc is not None:
        assert acc >= 0.5, f"{loss}: training accuracy {acc:.2f} (6 identities: chance is 0.17)"
    else:  # pair losses have no classifier: their loss over the whole training set must fall well below its start
        assert after < 0.5 * before, f"{loss}: loss {before:.3f} -> {after:.3f}"


@pytest.mark.slow
@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_learns(loss, train_cfg, tmp_path):
    _check_learns(loss, train_cfg, tmp_path, iterations=80)


def test_a_pair_loss_learns_quickly(train_cfg, tmp_path):
    """The default suite's learnability check (P x K batches, mining, no classifier); every loss: the slow test."""
    _check_learns("triplet", train_cfg, tmp_path, iterations=20)  # loss 0.200 -> 0.067
