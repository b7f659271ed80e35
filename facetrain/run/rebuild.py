"""Build a FaceModel from a config, and rebuild a trained one (weights + preprocessing) from its checkpoint.

The checkpoint's own config decides everything the evaluator needs, so a model is always embedded the
way it was trained: input size, channels and input normalization travel with the backbone; the fit
(resize or centre crop) comes from the training data's config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from facetrain.errors import FacetrainError
from facetrain.run.checkpoint import load_checkpoint
from facetrain.run.face_model import AfterHead, FaceModel

__all__ = ["EMBEDDING_STAGES", "Preprocessing", "TrainedModel", "build_face_model", "load_embedder",
           "preprocessing_of"]

EMBEDDING_STAGES = ("backbone", "head")


@dataclass(frozen=True)
class Preprocessing:
    """How images were fed to a model in training: (height, width), the fit mode, and image channels."""

    input_size: tuple[int, int]
    fit: str = "resize"
    channels: int = 3


@dataclass(frozen=True)
class TrainedModel:
    embedder: nn.Module  # images -> evaluation embeddings
    iteration: int  # the iteration the checkpoint was saved at
    preprocessing: Preprocessing


def build_face_model(cfg: DictConfig, num_classes: int | None) -> FaceModel:
    """backbone + head from `cfg.backbone` and `cfg.head` (the head gets `num_classes`, e.g. for eq. 9's alpha)."""
    return FaceModel(instantiate(cfg.backbone), instantiate(cfg.head, num_classes=num_classes))


def preprocessing_of(cfg: DictConfig, backbone: nn.Module) -> Preprocessing:
    """The training preprocessing of a run: size and channels from its backbone, fit from its data config."""
    data = cfg.get("data") or {}
    return Preprocessing(tuple(backbone.input_size), str(data.get("fit", "resize")),
                         int(getattr(backbone, "in_channels", 3)))


def load_embedder(checkpoint: Path, stage: str = "backbone") -> TrainedModel:
    """The network that makes evaluation embeddings, rebuilt from a facetrain checkpoint.

    Args:
        checkpoint: a facetrain checkpoint (its `config` rebuilds the model).
        stage: `backbone` (the deployed descriptor, default) or `head` (after the training head).
    """
    if stage not in EMBEDDING_STAGES:
        raise FacetrainError(f"embedding={stage!r} is not one of {', '.join(EMBEDDING_STAGES)}")
    state = load_checkpoint(checkpoint)
    if "config" not in state or "model" not in state:
        raise FacetrainError(f"{checkpoint} is not a facetrain checkpoint (no `config`/`model` entries)")
    cfg = OmegaConf.create(state["config"])
    model = build_face_model(cfg, state.get("num_classes"))
    model.backbone.load_state_dict(state["model"]["backbone"])
    if stage == "head":
        model.head.load_state_dict(state["model"]["head"])
    embedder = AfterHead(model) if stage == "head" else model.backbone
    return TrainedModel(embedder, int(state.get("iteration", 0)), preprocessing_of(cfg, model.backbone))
