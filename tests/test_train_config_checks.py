"""Bad train config values are refused in one line before anything runs (no data, no model, no run directory)."""

import copy
import math
import re
from pathlib import Path

import pytest
from helpers import compose_config, tiny_train_overrides
from omegaconf import OmegaConf

from facetrain.errors import FacetrainError, report_user_errors
from facetrain.train import train
from facetrain.train.config_checks import Rule, check_channels

REFUSED = [
    ("optim.lr", "abc", "optim.lr='abc' must be a number >= 0 (the base learning rate)"),
    ("val.every", -5, "val.every=-5 must be an integer >= 0 (iterations between validations, 0 = off)"),
    ("iterations", 0, "iterations=0 must be an integer >= 1"),
    ("iterations", "abc", "iterations='abc' must be an integer >= 1"),
    ("iterations", 2.5, "iterations=2.5 must be an integer >= 1"),
    ("batch_size", 0, "batch_size=0 must be an integer >= 1"),
    ("batch_size", -8, "batch_size=-8 must be an integer >= 1"),
    ("log_every", -1, "log_every=-1 must be an integer >= 1"),
    ("checkpoint_every", -1, "checkpoint_every=-1 must be an integer >= 1"),
    ("diverged_windows", 0, "diverged_windows=0 must be an integer >= 1"),
    ("nproc", 0, "nproc=0 must be an integer >= 1"),
    ("seed", -1, "seed=-1 must be an integer >= 0"),
    ("seed", 10**30, "seed=1000000000000000000000000000000 must be an integer >= 0 and <= 4294967295"),
    ("embedding_dim", 0, "embedding_dim=0 must be an integer >= 1"),
    ("input_size", [112], "input_size=[112] must be a list of 2 integers >= 1"),
    ("device", "gpu", "device='gpu' must be auto, cpu, cuda or cuda:N"),
    ("precision", "fp8", "precision='fp8' must be one of 'auto', 'bf16', 'fp16', 'fp32'"),
    ("progress", "maybe", "progress='maybe' must be true or false"),
    ("resume", "maybe", "resume='maybe' must be one of true, false, 'auto'"),
    ("resume_strict", 1, "resume_strict=1 must be true or false"),
    ("warmup.iterations", -1, "warmup.iterations=-1 must be an integer >= 0"),
    ("warmup.start_factor", 0, "warmup.start_factor=0 must be a number > 0 and <= 1"),
    ("clip_grad_norm", -1, "clip_grad_norm=-1 must be null or a number > 0"),
    ("clip_grad_norm", math.inf, "clip_grad_norm=inf must be null or a number > 0"),
    ("val.pairs_per_fold", 0, "val.pairs_per_fold=0 must be null or an integer >= 1"),
    ("val.mirror", "twice", "val.mirror='twice' must be one of 'sum', 'concat', 'none'"),
    ("val.batch_size", 0, "val.batch_size=0 must be an integer >= 1"),
    ("data.num_workers", -1, "data.num_workers=-1 must be auto or an integer >= 0"),
    ("data.num_workers", "many", "data.num_workers='many' must be auto or an integer >= 0"),
    ("data.hflip", "yes", "data.hflip='yes' must be true or false"),
    ("optim.momentum", -0.9, "optim.momentum=-0.9 must be a number >= 0"),
    ("optim.weight_decay", "abc", "optim.weight_decay='abc' must be a number >= 0"),
    ("schedule.milestones", [2, "x"], "schedule.milestones=[2, 'x'] must be a list of integers >= 0"),
    ("schedule.gamma", 0, "schedule.gamma=0 must be a number > 0"),
    ("alpha", -1, "alpha=-1 must be > 0"),
]


@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    """The real train config, shrunk, composed once: each case sets one key as Hydra parses its override."""
    return compose_config("train", tiny_train_overrides(tmp_path_factory.mktemp("data"), Path("unused")))


@pytest.mark.parametrize("key, value, message", REFUSED, ids=[f"{k}={v}" for k, v, _ in REFUSED])
def test_a_bad_value_is_refused_before_anything_runs(key, value, message, composed, tmp_path):
    cfg = copy.deepcopy(composed)
    OmegaConf.update(cfg, key, value)
    cfg.run_dir = str(tmp_path / "r")
    with pytest.raises(FacetrainError, match=f"^{re.escape(message)}") as err:
        train(cfg)
    assert "\n" not in str(err.value) and not (tmp_path / "r").exists()


@pytest.mark.parametrize("overrides, message", [
    (("schedule=cosine", "schedule.T_max=0"), "schedule.T_max=0 must be an integer >= 1"),
    (("schedule=poly", "schedule.power=-2"), "schedule.power=-2 must be a number > 0"),
    (("data.fit=stretch",), "data.fit='stretch' must be one of 'resize', 'crop'"),
])
def test_an_options_own_keys_are_checked_when_it_has_them(overrides, message, train_cfg, tmp_path):
    with pytest.raises(FacetrainError, match=f"^{re.escape(message)}"):
        train(train_cfg(*overrides, run_dir=tmp_path / "r"))


def test_the_user_error_path_prints_one_line_and_exits_2(train_cfg, tmp_path, capsys):
    """What `facetrain train optim.lr=abc` does: the command's wrapper around train (no traceback)."""
    with pytest.raises(SystemExit) as stop:
        report_user_errors(train)(train_cfg("optim.lr=abc", run_dir=tmp_path / "r"))
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "facetrain: error: optim.lr='abc' must be a number >= 0 (the base learning rate)"]


def test_accepted_values_pass():
    assert Rule("choice", "x", choices=("auto", "bf16")).accepts("BF16")  # precision=BF16 works as before
    assert Rule("choice", "x", choices=(True, False, "auto")).accepts(False)
    assert not Rule("choice", "x", choices=(True, False, "auto")).accepts(0)
    assert Rule("number", "x", low=0).accepts(1) and not Rule("number", "x", low=0).accepts(True)
    assert Rule("device", "x").accepts("cuda:1") and Rule("device", "x").accepts("auto")
    assert Rule("integer", "x", low=1, null=True).accepts(None) and not Rule("integer", "x", low=1).accepts(None)
    workers = Rule("integer", "x", low=0, words=("auto",))
    assert workers.accepts("auto") and workers.accepts("AUTO") and workers.accepts(0) and not workers.accepts("x")


def test_a_batch_larger_than_the_training_set_is_one_line(train_cfg, tmp_path):
    """Known only once the data is indexed: still a user error (one line), not a ValueError's traceback."""
    cfg = train_cfg("batch_size=100000")
    with pytest.raises(FacetrainError, match=r"batch_size=100000 exceeds the \d+ training images; use a smaller"):
        train(cfg)


@pytest.mark.parametrize("overrides, message", [
    (("data=mnist5k",), "the data gives 1-channel images but the backbone takes 3 (backbone.in_channels=3); use "
                        "backbone=lenet_pp"),
    (("backbone=lenet_pp",), "the data gives 3-channel images but the backbone takes 1 (backbone.in_channels=1); "
                             "use backbone.in_channels=3"),
])
def test_data_and_backbone_channels_must_agree(overrides, message, tmp_path):
    """`facetrain train data=mnist5k` (the default small_cnn takes colour) stopped at the first convolution with
    a RuntimeError's traceback; the digits' own recipe (lenet_pp, 1 channel) and colour faces still pass."""
    cfg = compose_config("train", [*tiny_train_overrides(tmp_path / "data", tmp_path / "r"), *overrides])
    with pytest.raises(FacetrainError, match=f"^{re.escape(message)}"):
        train(cfg)
    assert not (tmp_path / "r").exists()
    check_channels(compose_config("train", ["data=mnist5k", "backbone=lenet_pp"]))
    check_channels(compose_config("train", []))
