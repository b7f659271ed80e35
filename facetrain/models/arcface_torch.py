"""insightface arcface_torch `backbone.pth` state dicts (iresnet18 ... iresnet200) read into facetrain's IResNet.

Only key names differ: arcface_torch's `conv1/bn1/prelu`, `layerK.J.{bn1,conv1,bn2,prelu,conv2,bn3,downsample.I}`,
`bn2`, `fc`, `features` are facetrain's `stem.0/1/2`, `stages.K-1.J.body.0..5` / `.shortcut.I`, `bn_map`, `fc`,
`bn_feature`. The released models were trained on (x / 255 - 0.5) / 0.5 RGB 112x112 crops, so the rebuilt
backbone divides by 127.5 (`input_std`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch

from facetrain.backbones.iresnet import IRESNET_LAYERS, IResNet
from facetrain.errors import FacetrainError
from facetrain.models.state_fit import fit_state_dict

__all__ = ["ARCFACE_INPUT_STD", "arcface_backbone", "depth_of", "from_arcface_keys", "is_arcface_state", "load_arcface_into"]

ARCFACE_INPUT_STD = 127.5  # (x / 255 - 0.5) / 0.5 = (x - 127.5) / 127.5
_TOP = {"conv1": "stem.0", "bn1": "stem.1", "prelu": "stem.2", "bn2": "bn_map", "fc": "fc", "features": "bn_feature"}
_BLOCK = {"bn1": "body.0", "conv1": "body.1", "bn2": "body.2", "prelu": "body.3", "conv2": "body.4", "bn3": "body.5",
          "downsample.0": "shortcut.0", "downsample.1": "shortcut.1"}
_BLOCK_KEY = re.compile(r"layer([1-4])\.(\d+)\.(bn1|conv1|bn2|prelu|conv2|bn3|downsample\.[01])\.(\w+)$")
_TOP_KEY = re.compile(r"(conv1|bn1|prelu|bn2|fc|features)\.(\w+)$")
_TOP_BACK = {ours: theirs for theirs, ours in _TOP.items()}
_BLOCK_BACK = {ours: theirs for theirs, ours in _BLOCK.items()}
_OUR_BLOCK_KEY = re.compile(r"stages\.(\d)\.(\d+)\.(body\.\d|shortcut\.\d)\.(\w+)$")
_FIX = "give an insightface arcface_torch iresnet backbone.pth (r18/r34/r50/r100/r200) or a facetrain checkpoint"


def _strip(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Without the `module.` prefix a DistributedDataParallel wrapper adds when its state dict is saved."""
    return {k.removeprefix("module."): v for k, v in state.items()}


def is_arcface_state(state) -> bool:
    """A flat dict of tensors with arcface_torch's stem and first-stage names."""
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return False
    keys = _strip(state).keys()
    return "conv1.weight" in keys and any(k.startswith("layer1.") for k in keys)


def _rename(key: str) -> str | None:
    if match := _BLOCK_KEY.match(key):
        stage, block, part, leaf = match.groups()
        return f"stages.{int(stage) - 1}.{block}.{_BLOCK[part]}.{leaf}"
    if match := _TOP_KEY.match(key):
        return f"{_TOP[match.group(1)]}.{match.group(2)}"
    return None


def _their_name(ours: str) -> str:
    """facetrain's IResNet key as arcface_torch spells it (for messages about keys the file lacks)."""
    if match := _OUR_BLOCK_KEY.match(ours):
        stage, block, part, leaf = match.groups()
        return f"layer{int(stage) + 1}.{block}.{_BLOCK_BACK[part]}.{leaf}"
    top, _, leaf = ours.rpartition(".")
    return f"{_TOP_BACK.get(top, top)}.{leaf}"


def from_arcface_keys(state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """The state dict under facetrain's IResNet names; one line naming the first key that has no counterpart."""
    renamed = {}
    for key, value in _strip(state).items():
        ours = _rename(key)
        if ours is None:
            raise FacetrainError(f"{source} does not fit the model: key {key!r} is not an arcface_torch iresnet key "
                                 f"(conv1, bn1, prelu, layer1-4, bn2, fc, features); {_FIX}")
        renamed[ours] = value
    return renamed


def _layers(state: Mapping[str, torch.Tensor], source: str) -> tuple[int, ...]:
    blocks = [0, 0, 0, 0]
    for key in state:
        if match := _BLOCK_KEY.match(key):
            stage, block = int(match.group(1)), int(match.group(2))
            blocks[stage - 1] = max(blocks[stage - 1], block + 1)
    if 0 in blocks:
        raise FacetrainError(f"{source} does not fit the model: it has no layer{blocks.index(0) + 1} blocks; {_FIX}")
    return tuple(blocks)


def _shape_of(state: Mapping[str, torch.Tensor], key: str, source: str) -> torch.Size:
    if key not in state:
        raise FacetrainError(f"{source} does not fit the model: key {key!r} is missing; {_FIX}")
    return state[key].shape


def arcface_backbone(state: Mapping[str, torch.Tensor], source: str) -> IResNet:
    """An IResNet shaped by the file (blocks per stage, embedding size, input size) holding its weights.

    The FC's input is 512 x side x side; four stride-2 stages make a 16 x side crop (7 -> 112x112).
    """
    state = _strip(state)
    layers = _layers(state, source)
    fc = _shape_of(state, "fc.weight", source)
    side = math.isqrt(int(fc[1]) // 512) if len(fc) == 2 else 0
    if len(fc) != 2 or side * side * 512 != fc[1]:
        raise FacetrainError(f"{source} does not fit the model: 'fc.weight' has shape {list(fc)}, an iresnet needs "
                             f"[embedding, 512 x side x side]; {_FIX}")
    channels = int(_shape_of(state, "conv1.weight", source)[1])
    with torch.device("meta"):  # no init work: every tensor is replaced by the file's
        model = IResNet(int(fc[0]), (16 * side, 16 * side), layers, channels, input_std=ARCFACE_INPUT_STD)
    model = model.to_empty(device="cpu")
    for name, buffer in model.named_buffers():
        if name.endswith("num_batches_tracked"):
            buffer.zero_()  # a file without the counters keeps 0, not the empty tensor's bytes
    load_arcface_into(model, state, source)
    return model.eval()


def load_arcface_into(model: IResNet, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy an arcface_torch state dict into `model`; one line naming the first key or shape that does not fit."""
    shown = {key: _their_name(key) for key in model.state_dict()}
    fit_state_dict(model, from_arcface_keys(state, source), source, _FIX, shown)


def depth_of(layers: tuple[int, ...]) -> int | None:
    """18, 34, 50, 100 or 200 for arcface_torch's block counts; None for other counts."""
    return next((depth for depth, known in IRESNET_LAYERS.items() if known == tuple(layers)), None)
