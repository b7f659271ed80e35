"""`init_from=`: start a fresh run from another model's backbone weights (head and classifier start afresh; not a resume).

The weights come from a facetrain checkpoint (or its run directory) or an insightface arcface_torch
`backbone.pth`; either must fit the configured backbone key for key and shape.
"""

from __future__ import annotations

import logging

from torch import nn

from facetrain.backbones.iresnet import IResNet
from facetrain.config import abs_path
from facetrain.errors import FacetrainError
from facetrain.models.arcface_torch import ARCFACE_INPUT_STD, is_arcface_state, load_arcface_into
from facetrain.models.state_fit import fit_state_dict
from facetrain.run.checkpoint import find_checkpoint, load_checkpoint

__all__ = ["init_backbone"]

log = logging.getLogger(__name__)


def _from_arcface(backbone: nn.Module, state: dict, source: str) -> None:
    if not isinstance(backbone, IResNet):
        raise FacetrainError(f"init_from={source} holds arcface_torch iresnet weights but backbone is "
                             f"{type(backbone).__name__}; train backbone=iresnet18|34|50|100|200 (the file's depth) "
                             "with embedding_dim and input_size=[112,112] as the file has them")
    load_arcface_into(backbone, state, source)
    if abs(backbone.norm.scale * ARCFACE_INPUT_STD - 1) > 1e-9:
        log.warning("init_from: arcface_torch trained these weights on (x - 127.5) / 127.5; pass "
                    "backbone.input_std=127.5 to feed them the same way")


def init_backbone(backbone: nn.Module, spec: str) -> None:
    """Copy the backbone weights of `spec` (checkpoint, run directory, or arcface_torch backbone.pth) into `backbone`."""
    path = find_checkpoint(abs_path(spec))
    state = load_checkpoint(path, fix="init_from takes a facetrain run directory or checkpoint, or an arcface_torch "
                            "iresnet backbone.pth")
    if is_arcface_state(state):
        _from_arcface(backbone, state, str(path))
    elif isinstance(state, dict) and "model" in state and "backbone" in state["model"]:
        fit_state_dict(backbone, state["model"]["backbone"], str(path),
                       "init_from needs the same backbone config (and embedding_dim, input_size) as the run it names")
    else:
        raise FacetrainError(f"init_from={path} is neither a facetrain checkpoint nor an arcface_torch iresnet "
                             "backbone.pth; give one of those")
    log.info("init_from: backbone weights from %s (head and loss start afresh)", path)
