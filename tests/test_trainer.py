"""Trainer: exact resume, checkpoint contract, metrics.json and TensorBoard scalars."""

import json

import pytest
import torch
import yaml
from helpers import REPO
from omegaconf import open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from facetrain.errors import FacetrainError, TrainingDiverged
from facetrain.train import build_state, step, train
from facetrain.train.resume import resume


def _weights(run_dir):
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    return state, {f"{part}.{k}": v for part, sd in state["model"].items() for k, v in sd.items()}


class _Crash(Exception):
    pass


SCHEDULES = sorted(p.stem for p in (REPO / "configs" / "schedule").glob("*.yaml"))


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_resume_gives_the_weights_of_an_uninterrupted_run(schedule, train_cfg, tmp_path, monkeypatch):
    args = ("iterations=6", "checkpoint_every=3", "loss=l2softmax", "alpha=trained", f"schedule={schedule}",
            "schedule.milestones=[2,4]" if schedule == "multistep" else "seed=0", "input_size=[56,48]")  # half-size crops: 4x faster steps
    train(train_cfg(*args, run_dir=tmp_path / "full"))

    real_flip = step.random_hflip

    def crash_at_4(images, seed, iteration):  # the process dies during iteration 4
        if iteration == 4:
            raise _Crash
        return real_flip(images, seed, iteration)

    cfg = train_cfg(*args, run_dir=tmp_path / "resumed")
    monkeypatch.setattr(step, "random_hflip", crash_at_4)
    with pytest.raises(_Crash):
        train(cfg)
    monkeypatch.setattr(step, "random_hflip", real_flip)
    assert torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)["iteration"] == 3
    with open_dict(cfg):
        cfg.resume = True
    train(cfg)
    full_state, full = _weights(tmp_path / "full")
    resumed_state, resumed = _weights(tmp_path / "resumed")
    assert resumed_state["iteration"] == full_state["iteration"] == 6
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    assert full_state["scheduler"] == resumed_state["scheduler"]
    assert [g["lr"] for g in full_state["optimizer"]["param_groups"]] == \
        [g["lr"] for g in resumed_state["optimizer"]["param_groups"]]
    # and the weights did move: training happened
    first = train_cfg("iterations=1", "input_size=[56,48]", run_dir=tmp_path / "one")
    train(first)
    assert not torch.equal(_weights(tmp_path / "one")[1]["backbone.fc.weight"], full["backbone.fc.weight"])


def test_checkpoint_contract(train_cfg, tmp_path):
    train(train_cfg("loss=l2softmax", "alpha=auto", run_dir=tmp_path / "r"))
    state, _ = _weights(tmp_path / "r")
    assert {"model", "optimizer", "scheduler", "scaler", "iteration", "rng", "config"} <= state.keys()
    assert set(state["model"]) == {"backbone", "head", "loss"}
    assert yaml.safe_load(state["config"])["alpha"] == "auto"
    assert not list((tmp_path / "r" / "checkpoints").glob(".*tmp"))  # no half-written leftovers


def test_metrics_and_tensorboard(train_cfg, tmp_path):
    run = tmp_path / "r"
    train(train_cfg("loss=l2softmax", "alpha=8", run_dir=run))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train/iterations"] == 4 and metrics["train/alpha"] == 8
    assert 0 <= metrics["train/acc"] <= 1 and metrics["train/loss"] > 0
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/loss/softmax", "train/acc", "train/lr", "train/feat_norm_mean",
            "train/feat_norm_std", "train/alpha", "train/alpha_bound"} <= tags


def test_a_diverging_run_stops_with_a_clear_error(train_cfg, tmp_path):
    run = tmp_path / "r"
    with pytest.raises(TrainingDiverged, match="optim.lr") as err:
        train(train_cfg("optim.lr=1e30", "iterations=20", run_dir=run))
    assert "stopped at iteration 8" in str(err.value)  # steps 3.. skipped: windows 3-4, 5-6, 7-8 bad
    diverged = torch.load(run / "checkpoints" / "diverged.pt", weights_only=True)
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert diverged["iteration"] == 8 and last["iteration"] == 2  # last.pt: the last good window's state
    assert all(torch.isfinite(v).all() for v in diverged["model"]["backbone"].values() if v.is_floating_point())


def test_resume_refuses_overrides_that_change_the_model_by_name(train_cfg, tmp_path):
    run = tmp_path / "r"
    train(train_cfg("iterations=2", run_dir=run))
    with pytest.raises(FacetrainError, match=r"loss\._target_: 'facetrain.losses.SoftmaxLoss' -> .*ArcFace.*"
                                             r"resume_strict=false"):
        train(train_cfg("iterations=4", "resume=true", "loss=arcface", run_dir=run))
    last = run / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:2000])
    with pytest.raises(FacetrainError, match=r"cut short or damaged\); resume=true continues the run from it: put "
                                             r"back an intact copy, or start afresh in another run directory"):
        train(train_cfg("iterations=4", "resume=true", run_dir=run))  # it suggested an .onnx model


def test_resume_strict_false_keeps_the_parts_that_fit(train_cfg, tmp_path):
    run = tmp_path / "r"
    train(train_cfg("iterations=2", run_dir=run))
    before = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    cfg = train_cfg("iterations=3", "resume=true", "resume_strict=false", "loss=arcface", "optim.lr=0",
                    "optim.weight_decay=0", "optim.momentum=0", run_dir=run)
    train(cfg)
    after = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert after["iteration"] == 3 and set(after["model"]["loss"]) != set(before["model"]["loss"])
    for key, value in before["model"]["backbone"].items():  # lr 0: the backbone is the checkpoint's
        if value.is_floating_point() and "running" not in key:
            assert torch.equal(after["model"]["backbone"][key], value), key


def test_resume_with_a_longer_run_is_allowed(train_cfg, tmp_path):
    run = tmp_path / "r"
    train(train_cfg("iterations=2", run_dir=run))
    assert train(train_cfg("iterations=3", "resume=true", run_dir=run))["train/iterations"] == 3


def _rates(state, n):
    """The learning rate of every parameter group at each of the next n iterations."""
    rates = []
    for _ in range(n):
        rates.append([group["lr"] for group in state.optimizer.param_groups])
        state.optimizer.step()  # no gradients: nothing moves, but the schedule is stepped in its order
        state.scheduler.step()
    return rates


@pytest.mark.parametrize("changed", [("iterations=15",), ("iterations=12", "schedule=cosine", "optim.lr=0.05")])
def test_resume_with_another_schedule_follows_the_new_one_from_the_current_iteration(changed, train_cfg, tmp_path):
    """4 iterations (no warm-up: round(4 / 28) = 0; milestones 2, 3), then resume=true iterations=15: a warm-up
    of 1 appears and the milestones move to 9, 13. That was `KeyError: '_schedulers'` (issue: 10 then 60)."""
    run = tmp_path / "r"
    train(train_cfg(run_dir=run))
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    cfg = train_cfg(*changed, "resume=true", run_dir=run)
    resumed = build_state(cfg, saved["num_classes"], torch.device("cpu"), run)
    resume(resumed, True)
    fresh = build_state(cfg, saved["num_classes"], torch.device("cpu"), tmp_path / "fresh")
    end = int(cfg.iterations)
    assert resumed.iteration == 4 and _rates(resumed, end - 4) == _rates(fresh, end)[4:]  # exactly
    momentum = resumed.optimizer.state_dict()["state"]  # the optimizer's own state is the checkpoint's
    assert all(torch.equal(momentum[i]["momentum_buffer"], s["momentum_buffer"])
               for i, s in saved["optimizer"]["state"].items())
    assert train(cfg)["train/iterations"] == end
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert [g["lr"] for g in last["optimizer"]["param_groups"]] == \
        [g["lr"] for g in fresh.optimizer.param_groups]  # both at the end of the new schedule
