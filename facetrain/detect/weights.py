"""MTCNN's published weights, read from the files of the installed facenet-pytorch wheel (MIT; docs/detector.md).

Only the three weight files are used: the package is located without being imported (its code
pins an old torch), so `pip install facenet-pytorch --no-deps` is all it needs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from facetrain.detect.nets import ONet, PNet, RNet
from facetrain.errors import FacetrainError

__all__ = ["load_nets", "weights_folder"]

_PACKAGE = "facenet_pytorch"
_FIX = "run `make setup` (or `pip install facenet-pytorch==2.6.0 --no-deps`) to install them"


def weights_folder() -> Path:
    """The folder holding pnet.pt, rnet.pt and onet.pt."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FacetrainError(f"the face detector's weights ({_PACKAGE}'s data files) are not installed; {_FIX}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    missing = [n for n in ("pnet.pt", "rnet.pt", "onet.pt") if not (folder / n).is_file()]
    if missing:
        raise FacetrainError(f"{folder} lacks the face detector's {', '.join(missing)}; {_FIX}")
    return folder


def _load(net: nn.Module, file: Path) -> nn.Module:
    net.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    return net.eval().requires_grad_(False)


def load_nets() -> tuple[PNet, RNet, ONet]:
    """The three networks with their published weights, on the CPU, in eval mode, without gradients."""
    folder = weights_folder()
    return _load(PNet(), folder / "pnet.pt"), _load(RNet(), folder / "rnet.pt"), _load(ONet(), folder / "onet.pt")
