"""ResNet-101 / ResNeXt-101 (and kin) from torchvision with FC-512 on top, as in Ranjan et al. 2017, §5.2."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn
from torchvision.models import ResNet
from torchvision.models.resnet import Bottleneck

from facetrain.backbones.base import Backbone
from facetrain.errors import FacetrainError

__all__ = ["STEMS", "TorchvisionTrunk", "imagenet_weights_file"]

STEMS = ("face", "imagenet")


def _resnext101_32x4d() -> ResNet:
    """The FAIR 2017 ResNeXt-101 (32x4d); torchvision builds it but ships no weights for it."""
    return ResNet(Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=4)


_EXTRA_ARCHS = {"resnext101_32x4d": _resnext101_32x4d}


def _build_resnet(arch: str) -> ResNet:
    if arch in _EXTRA_ARCHS:
        return _EXTRA_ARCHS[arch]()
    if arch not in torchvision.models.list_models(torchvision.models):
        raise FacetrainError(f"unknown torchvision model arch={arch!r}; use resnet101, resnext101_32x4d, "
                             "resnext101_32x8d, resnext101_64x4d or another torchvision ResNet")
    model = torchvision.models.get_model(arch, weights=None)
    if not isinstance(model, ResNet):
        raise FacetrainError(f"arch={arch!r} is not a torchvision ResNet/ResNeXt; this backbone needs one")
    return model


def imagenet_weights_file(arch: str, weights: str) -> Path:
    """Where torchvision's weights API keeps the file of `arch`'s `weights` (TORCH_HOME/hub/checkpoints).

    Args:
        arch: torchvision model name, e.g. resnet101.
        weights: the weights enum member, e.g. IMAGENET1K_V1.

    Returns:
        The path torchvision would download to; nothing is downloaded.
    """
    enum = _weights_enum(arch, weights)
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(enum.url).path).name


def _weights_enum(arch: str, weights: str):
    if arch in _EXTRA_ARCHS:
        raise FacetrainError(f"torchvision has no ImageNet weights for {arch}; set backbone.weights_path=FILE "
                             "(a state dict with torchvision's key names, e.g. a converted gluon/timm "
                             "resnext101_32x4d) or pick backbone.arch=resnext101_32x8d or resnext101_64x4d")
    members = torchvision.models.get_model_weights(arch)
    if weights not in members.__members__:
        raise FacetrainError(f"{arch} has no weights {weights!r}; available: {', '.join(members.__members__)}")
    return members[weights]


def _imagenet_state(arch: str, weights: str, weights_path: str | None) -> dict:
    """The ImageNet state dict from a local file only; never the network."""
    if weights_path:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FacetrainError(f"backbone.weights_path={path} does not exist; give the ImageNet state dict file")
        return torch.load(path, map_location="cpu", weights_only=True)
    path = imagenet_weights_file(arch, weights)
    if not path.is_file():
        url = _weights_enum(arch, weights).url
        raise FacetrainError(f"pretrained=true needs the ImageNet weights file {path} (no download is tried): "
                             f"copy {url} there (or set TORCH_HOME), or set backbone.weights_path=FILE")
    return _weights_enum(arch, weights).get_state_dict(progress=False)  # finds the cached file


def _load_trunk(trunk: ResNet, state: dict, arch: str) -> None:
    """Load everything but the ImageNet classifier, refusing a file made for another network."""
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        trunk.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise FacetrainError(f"the ImageNet weights do not fit {arch}: {first}") from None


class TorchvisionTrunk(Backbone):
    """A torchvision ResNet/ResNeXt trunk, global average pooling, then FC to the embedding.

    Ranjan et al. 2017 (§5.2) add "a fully-connected layer of dimension 512" to ImageNet-
    initialised ResNet-101 and ResNeXt-101; the 1000-way classifier is dropped.

    Stem for face crops (`stem="face"`, the default): torchvision's 7x7/2 conv is kept and its
    3x3/2 max-pool removed, so the network downsamples 16x instead of 32x. A 112x112 crop then
    ends in a 7x7 map, the grid an ImageNet model sees at 224 px and the one IResNet ends with
    at 112 px (8x8 at 128x128); with the max-pool (`stem="imagenet"`) it ends in 4x4, too coarse
    for faces. Removing a parameter-free layer keeps every ImageNet weight usable and the
    parameter count unchanged; the price is ~4x the FLOPs of `stem="imagenet"`.

    Parameters (trunk = torchvision's model minus its fc, plus FC 2048->512): resnet101
    43,549,248; resnext101_32x4d 43,177,792; resnext101_32x8d 87,791,424; resnext101_64x4d
    82,455,360; the input size does not change them.

    Args:
        arch: torchvision model name (resnet101, resnext101_32x8d, resnext101_64x4d, ...) or
            resnext101_32x4d (the FAIR 2017 ResNeXt-101, built with torchvision's ResNet class).
        embedding_dim: size of the FC layer after pooling (512 in the paper).
        input_size: (height, width) of the crops (the model itself accepts any size).
        stem: "face" (no max-pool) or "imagenet" (torchvision's stem unchanged).
        pretrained: initialise the trunk from ImageNet, from a local file only.
        weights: torchvision weights name for pretrained=true (IMAGENET1K_V1, IMAGENET1K_V2, ...).
        weights_path: a state dict file to use instead of torchvision's cache (TORCH_HOME).
    """

    def __init__(
        self,
        arch: str = "resnet101",
        embedding_dim: int = 512,
        input_size: Sequence[int] = (112, 112),
        stem: str = "face",
        pretrained: bool = False,
        weights: str = "IMAGENET1K_V1",
        weights_path: str | None = None,
    ):
        if stem not in STEMS:
            raise FacetrainError(f"backbone.stem={stem!r} must be one of {', '.join(STEMS)}")
        super().__init__(embedding_dim, input_size)  # torchvision's stem takes 3 channels
        trunk = _build_resnet(arch)
        width = trunk.fc.in_features
        trunk.fc = nn.Identity()  # the 1000-way ImageNet classifier
        if pretrained:
            _load_trunk(trunk, _imagenet_state(arch, weights, weights_path), arch)
        if stem == "face":
            trunk.maxpool = nn.Identity()
        self.trunk = trunk
        self.fc = nn.Linear(width, self.embedding_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.trunk(self.norm(images)))
