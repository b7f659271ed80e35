"""Every option of every config group composes and builds (one parametrized test, timm-style)."""

import pytest
import torch
from conftest import REPO, compose_config
from data_helpers import write_digits
from hydra.utils import instantiate

from facetrain.data.pack import pack_tree
from facetrain.train.build import build_parts

GROUPS = ["backbone", "head", "loss", "data", "optim", "schedule"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((REPO / "configs" / g).glob("*.yaml"))]


def _data_overrides(option, tiny_data, tmp_path):
    """Point data options that read real datasets at tiny generated ones."""
    casia = tiny_data / "synth" / "casia"
    if option in ("mnist", "fashion_mnist"):
        return [f"data.root={write_digits(tmp_path / option)}", "input_size=[28,28]", "data.dataset.channels=3"]
    if option == "packed":
        pack_tree(casia, tmp_path / "pack", size=(112, 96), workers=1, progress=False)
        return [f"data.root={tmp_path / 'pack'}"]
    return [] if option == "synth" else [f"data.root={casia}", f"data.cache_dir={tmp_path / 'cache'}"]


@pytest.mark.parametrize("group, option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_builds(group, option, tiny_data, tmp_path):
    extra = _data_overrides(option, tiny_data, tmp_path) if group == "data" else []
    cfg = compose_config("train", [f"paths.data={tiny_data}", f"run_dir={tmp_path}", f"{group}={option}", *extra])
    dataset = instantiate(cfg.data.dataset)
    model, loss = build_parts(cfg, dataset.num_classes)
    optimizer = instantiate(cfg.optim)([*model.parameters(), *loss.parameters()])
    instantiate(cfg.schedule)(optimizer)
    images = torch.stack([dataset[i][0] for i in range(2)])
    if getattr(model.backbone, "in_channels", 3) == 1:  # LeNet++ reads grey digits: feed grey images
        images = images.float().mean(1, keepdim=True)
    out = loss(model(images)[1], torch.tensor([0, 1]))
    assert out.total.ndim == 0 and torch.isfinite(out.total)


def test_loss_picks_its_head_and_the_command_line_wins():
    assert compose_config("train", ["loss=l2softmax"]).head._target_.endswith("L2ScaleHead")
    assert compose_config("train", ["loss=softmax"]).head._target_.endswith("IdentityHead")
    assert compose_config("train", ["loss=l2softmax", "head=identity"]).head._target_.endswith("IdentityHead")


def test_default_schedule_scales_with_iterations():
    cfg = compose_config("train", ["iterations=28000"])
    assert list(cfg.schedule.milestones) == [16000, 24000]  # caffe-face's 16K/24K of 28K


def test_eval_points_at_real_lfw_with_two_overrides():
    cfg = compose_config("eval", ["data.root=/data/lfw", "protocol.pairs=/data/lfw/pairs.txt"])
    assert cfg.protocol.pairs == "/data/lfw/pairs.txt" and cfg.data.root == "/data/lfw"
    assert compose_config("eval", ["data.root=/x"]).protocol.pairs == "/x/pairs.txt"
