"""Every option of every config group composes and builds (one parametrized test, timm-style)."""

import pytest
import torch
from data_helpers import write_digits, write_digits_csv
from helpers import REPO, compose_config
from hydra.utils import instantiate
from omegaconf import OmegaConf

from facetrain.data.formats.pack import pack_tree
from facetrain.data.formats.rec_convert import folder_to_rec
from facetrain.errors import FacetrainError
from facetrain.train.build import build_parts
from facetrain.train.config_checks import check_train_config

GROUPS = ["backbone", "head", "loss", "data", "optim", "schedule"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((REPO / "configs" / g).glob("*.yaml"))]
# the deepest trunks take seconds to build and run on 2 CPU cores (iresnet200, 119 M parameters: 12 s); iresnet50 and
# the small ones stay in the default suite (shapes: test_backbones)
SLOW = {("backbone", "iresnet200"), ("backbone", "iresnet100"), ("backbone", "resnet101"), ("backbone", "resnext101")}


def _data_overrides(option, tiny_data, tmp_path):
    """Point data options that read real datasets at tiny generated ones."""
    casia = tiny_data / "synth" / "casia"
    if option in ("mnist", "fashion_mnist"):
        return [f"data.root={write_digits(tmp_path / option)}", "input_size=[28,28]", "data.dataset.channels=3"]
    if option == "mnist5k":
        return [f"data.dataset.csv={write_digits_csv(tmp_path / 'digits.csv.gz')}", "input_size=[28,28]",
                "data.dataset.channels=3"]
    if option == "packed":
        pack_tree(casia, tmp_path / "pack", size=(112, 96), workers=1, progress=False)
        return [f"data.root={tmp_path / 'pack'}"]
    if option == "rec":
        folder_to_rec(casia, tmp_path / "rec", progress=False)
        return [f"data.root={tmp_path / 'rec'}"]
    return [] if option == "synth" else [f"data.root={casia}", f"data.cache_dir={tmp_path / 'cache'}"]


@pytest.mark.parametrize("group, option", [pytest.param(g, o, marks=[pytest.mark.slow] if (g, o) in SLOW else [])
                                           for g, o in OPTIONS], ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_builds(group, option, tiny_data, tmp_path):
    extra = _data_overrides(option, tiny_data, tmp_path) if group == "data" else []
    cfg = compose_config("train", [f"paths.data={tiny_data}", f"run_dir={tmp_path}", f"{group}={option}", *extra])
    if (group, option) == ("backbone", "lenet_pp"):  # the digits' network, on the default colour face data
        with pytest.raises(FacetrainError, match="3-channel images but the backbone takes 1"):
            check_train_config(cfg)
    else:
        check_train_config(cfg)  # the up-front checks accept every other option as shipped
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


# The composed `data` node of every face-folder option, written out: configs/data_selection.yaml moved the
# identity-selection keys out of folder.yaml and packed.yaml, and this pins what users get (and type) unchanged.
_SELECTION = {"min_images": 1, "max_identities": None, "max_images": None, "keep_identities": None,
              "subset_order": "most_images", "subset_seed": 0, "exclude_identities_of": None,
              "eval_sets": {"lfw": "${paths.data}/synth/lfw"}, "identity_names": None, "exclude": None}
_PASSED = {key: f"${{..{key}}}" for key in _SELECTION}
_FOLDER = {"root": "???", "num_workers": "auto", "hflip": True, "fit": "resize", "decode": "cpu",
           "cache_dir": "${paths.data}/cache/index",
           "verify": False, **_SELECTION,
           "dataset": {"_target_": "facetrain.data.FaceFolder", "root": "${..root}", "input_size": "${input_size}",
                       "fit": "${..fit}", "cache_dir": "${..cache_dir}", "verify": "${..verify}",
                       "workers": "${..num_workers}", **_PASSED}}
DATA_NODES = {
    "folder": _FOLDER,
    "packed": {"root": "???", "num_workers": "auto", "hflip": True, "fit": "resize", "decode": "cpu", **_SELECTION,
               "dataset": {"_target_": "facetrain.data.PackedFaces", "root": "${..root}", "input_size": "${input_size}",
                           "fit": "${..fit}", **_PASSED}},
    "synth": _FOLDER | {"root": "${paths.data}/synth/casia", "cache_dir": None,
                        "generate_if_missing": True, "val_every": 400,  # and `synth:`, what `facetrain data synth` uses
                        "synth": OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "synth" / "default.yaml"))},
    "casia": _FOLDER | {"root": "${paths.data}/CASIA-WebFace-112x96"},
    "msceleb": _FOLDER | {"root": "${paths.data}/ms-celeb-1m-112x96"},
}


@pytest.mark.parametrize("option", DATA_NODES)
def test_face_data_options_compose_the_shared_selection_keys(option):
    data = compose_config("train", [f"data={option}"]).data
    assert OmegaConf.to_container(data, resolve=False) == DATA_NODES[option]
    assert list(data.dataset)[0] == "_target_"


@pytest.mark.parametrize("option", DATA_NODES)
def test_selection_keys_are_typed_as_before_and_reach_the_dataset(option):
    cfg = compose_config("train", [f"data={option}", "data.root=/x", "data.min_images=20", "data.max_identities=5",
                                   "data.subset_order=random", "data.exclude_identities_of=[lfw]"])
    assert (cfg.data.dataset.min_images, cfg.data.dataset.max_identities, cfg.data.dataset.subset_order) == (
        20, 5, "random")
    assert list(cfg.data.dataset.exclude_identities_of) == ["lfw"] and cfg.data.dataset.root == "/x"
