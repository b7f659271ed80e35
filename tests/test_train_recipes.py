"""Recipes that train: linear warm-up times the schedule, gradient clipping, and non-finite steps skipped."""

import json

import pytest
import torch
from omegaconf import open_dict

from facetrain.errors import FacetrainError
from facetrain.train import build_state, step, train, train_step
from facetrain.train.build import build_scheduler


def _lrs(cfg, n):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=float(cfg.optim.lr))
    scheduler = build_scheduler(cfg, optimizer)
    rates = []
    for _ in range(n):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_warmup_multiplies_the_schedule_and_keeps_milestones_absolute(train_cfg):
    cfg = train_cfg("optim.lr=0.1", "warmup.iterations=4", "warmup.start_factor=0.2", "schedule.milestones=[6,8]")
    expected = [0.1 * min(1.0, 0.2 + 0.8 * t / 4) * 0.1 ** ((t >= 6) + (t >= 8)) for t in range(10)]
    assert _lrs(cfg, 10) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("schedule, closed_form", [
    ("cosine", lambda t, n: 0.5 * (1 + torch.cos(torch.tensor(torch.pi * t / n)).item())),
    ("poly", lambda t, n: 1 - t / n),
])
def test_warmup_times_cosine_and_poly(schedule, closed_form, train_cfg):
    cfg = train_cfg("optim.lr=0.1", f"schedule={schedule}", "iterations=12", "warmup.iterations=3",
                    "warmup.start_factor=0.1")
    expected = [0.1 * min(1.0, 0.1 + 0.9 * t / 3) * closed_form(t, 12) for t in range(12)]
    assert _lrs(cfg, 12) == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_bad_warmup_and_clip_values_are_one_line_errors(train_cfg, tmp_path):
    with pytest.raises(FacetrainError, match="warmup.start_factor"):
        build_scheduler(train_cfg("warmup.iterations=2", "warmup.start_factor=0"), torch.optim.SGD(
            [torch.nn.Parameter(torch.zeros(1))], lr=0.1))
    with pytest.raises(FacetrainError, match="clip_grad_norm"):
        train(train_cfg("clip_grad_norm=-1", run_dir=tmp_path / "r"))
    with pytest.raises(FacetrainError, match="num_workers"):
        train(train_cfg("data.num_workers=-1", run_dir=tmp_path / "r2"))


def _state(train_cfg, tmp_path, *extra):
    cfg = train_cfg("optim.lr=0.5", "optim.momentum=0", "optim.weight_decay=0", *extra)
    return build_state(cfg, 3, torch.device("cpu"), tmp_path)


def _moves(state, images, labels):
    """(the step's statistics, how far the model's parameters moved, how far the loss's moved)."""
    model = {id(p) for p in state.model.parameters()}
    before = [p.detach().clone() for p in state.parameters]
    stats = train_step(state, images, labels)
    moved = [(id(p) in model, (p.detach() - b).flatten()) for p, b in zip(state.parameters, before, strict=True)]
    return (stats, torch.cat([m for own, m in moved if own]).norm().item(),
            torch.cat([m for own, m in moved if not own]).norm().item())


def test_clipping_all_bounds_the_update_to_lr_times_the_norm(train_cfg, tmp_path):
    state = _state(train_cfg, tmp_path, "clip_grad_norm=0.01")
    images = torch.randint(0, 256, (4, 3, 112, 96), dtype=torch.uint8)
    _, model, loss = _moves(state, images, torch.tensor([0, 1, 2, 0]))
    assert all(p.grad is None for p in state.parameters)  # no gradient held between steps (docs/scale.md)
    # plain SGD: the step is -lr * g, and the clipped global norm of g is at most 0.01
    assert (model**2 + loss**2) ** 0.5 == pytest.approx(0.5 * 0.01, rel=1e-3)


def test_clipping_the_model_alone_leaves_the_classifier_unclipped(train_cfg, tmp_path):
    """clip_grad_scope=model, as arcface_torch clips its backbone: the classifier's step is the plain -lr * g."""
    images = torch.randint(0, 256, (4, 3, 112, 96), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 0])
    assert _state(train_cfg, tmp_path).clip_scope == "all"  # the default
    stats, model, loss = _moves(_state(train_cfg, tmp_path, "clip_grad_norm=0.01", "clip_grad_scope=model"), images,
                                labels)
    assert model == pytest.approx(0.5 * 0.01, rel=1e-3) and loss > 10 * 0.5 * 0.01  # the loss's step: unclipped
    every, _, _ = _moves(_state(train_cfg, tmp_path, "clip_grad_norm=0.01"), images, labels)
    # the logged norm is the clipped parameters' norm: all = sqrt(model^2 + loss^2), loss's raw = its step / lr
    assert float(every["grad_norm"]) ** 2 == pytest.approx(float(stats["grad_norm"]) ** 2 + (loss / 0.5) ** 2,
                                                           rel=1e-4)


def test_a_non_finite_step_is_skipped_and_counted(train_cfg, tmp_path, monkeypatch):
    real_flip = step.random_hflip

    def poison_iteration_3(images, seed, iteration):
        images = real_flip(images, seed, iteration)
        return images.float() * float("nan") if iteration == 3 else images

    monkeypatch.setattr(step, "random_hflip", poison_iteration_3)
    run = tmp_path / "r"
    metrics = train(train_cfg("iterations=6", "log_every=2", run_dir=run))
    assert metrics["train/skipped_steps"] == 1 and metrics["train/iterations"] == 6
    assert json.loads((run / "metrics.json").read_text())["train/skipped_steps"] == 1
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"]["backbone"].values() if v.is_floating_point())


def test_skipping_leaves_weights_and_momentum_untouched(train_cfg, tmp_path):
    state = _state(train_cfg, tmp_path)
    with open_dict(state.cfg):
        state.cfg.optim.momentum = 0.9
    images = torch.randint(0, 256, (4, 3, 112, 96), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0])
    train_step(state, images, labels)
    weights = [p.detach().clone() for p in state.parameters]
    stats = train_step(state, images.float() * float("nan"), labels)
    assert stats == {} and state.skipped_steps == 1 and state.iteration == 2
    assert all(torch.equal(p, w) for p, w in zip(state.parameters, weights, strict=True))
