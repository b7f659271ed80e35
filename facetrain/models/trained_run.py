"""TrainedRun, the one way to open a facetrain checkpoint: its config, model, loss, iteration and preprocessing.

The embedder of `facetrain eval`, `facetrain export`, `eval features2d` and the report's analyses all rebuild
a trained model through it. The checkpoint's own config decides everything, so a model is always embedded the
way it was trained: input size, channels and input normalization travel with the backbone; the fit
(resize or centre crop) comes from the training data's config.

`model=` also takes the field's released models: an insightface arcface_torch `backbone.pth` (rebuilt as
facetrain's IResNet, fed as arcface_torch trained it) or any ONNX face model (run by onnxruntime).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from facetrain.errors import FacetrainError
from facetrain.models.arcface_torch import arcface_backbone, depth_of, is_arcface_state
from facetrain.models.face_model import AfterHead, FaceModel
from facetrain.models.state_fit import fit_state_dict
from facetrain.run.checkpoint import load_checkpoint

__all__ = ["EMBEDDING_STAGES", "Preprocessing", "TrainedModel", "TrainedRun", "build_face_model", "load_embedder",
           "preprocessing_of"]

log = logging.getLogger(__name__)

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


def _foreign(path: Path, state, stage: str) -> TrainedModel:
    """An arcface_torch backbone.pth or an ONNX file (state None): the backbone only, resized images."""
    if stage != "backbone":
        raise FacetrainError(f"embedding={stage} needs a facetrain checkpoint (its training head); {path} holds a "
                             "backbone only: use embedding=backbone")
    if state is None:
        from facetrain.models.onnx_model import OnnxEmbedder  # onnxruntime only when an ONNX file is scored

        embedder = OnnxEmbedder(path)
        log.info("model %s: ONNX, input %s %dx%d, %s", path, embedder.layout, *embedder.input_size,
                 embedder.dtype.__name__)
    else:
        embedder = arcface_backbone(state, str(path))
        log.info("model %s: arcface_torch iresnet%s state dict", path, depth_of(embedder.layers) or "")
    return TrainedModel(embedder, 0, Preprocessing(tuple(embedder.input_size), "resize", int(embedder.in_channels)))


def is_facetrain_state(state) -> bool:
    return isinstance(state, dict) and "config" in state and "model" in state


@dataclass
class TrainedRun:
    """A facetrain checkpoint opened: its training config, and the parts it trained, rebuilt on demand.

    Args:
        path: where the checkpoint was read from (named in errors).
        state: the checkpoint's dict (`config`, `model`, `iteration`, `num_classes`, ...).
    """

    path: Path
    state: dict

    @classmethod
    def open(cls, checkpoint) -> TrainedRun:
        """Load `checkpoint`; one line naming the file when it is not a facetrain checkpoint."""
        state = load_checkpoint(checkpoint)
        if not is_facetrain_state(state):
            raise FacetrainError(f"{checkpoint} is not a facetrain checkpoint (no `config`/`model` entries); pass a "
                                 "run's checkpoints/last.pt or best.pt")
        return cls(Path(checkpoint), state)

    @cached_property
    def cfg(self) -> DictConfig:
        return OmegaConf.create(self.state["config"])

    @property
    def iteration(self) -> int:
        return int(self.state.get("iteration", 0))

    @property
    def num_classes(self) -> int | None:
        classes = self.state.get("num_classes")
        return None if classes is None else int(classes)

    def face_model(self, head: bool = True) -> FaceModel:
        """The backbone (and the training head, unless head=False) with their trained weights, in eval mode."""
        model = build_face_model(self.cfg, self.num_classes)
        fit_state_dict(model.backbone, self.state["model"]["backbone"], str(self.path),
                       "the checkpoint's config and weights disagree; evaluate the checkpoint its run wrote")
        if head:
            model.head.load_state_dict(self.state["model"]["head"])
        return model.eval()

    def loss(self, model: FaceModel) -> nn.Module:
        """The trained loss of `model` (class weights, learned scales) as its config built it, in eval mode."""
        loss = instantiate(self.cfg.loss, embedding_dim=model.embedding_dim, num_classes=self.num_classes)
        loss.load_state_dict(self.state["model"]["loss"])
        return loss.eval()

    def embedder(self, stage: str = "backbone") -> TrainedModel:
        """The network that makes evaluation embeddings: the backbone, or the features after the training head."""
        model = self.face_model(head=stage == "head")
        embedder = AfterHead(model) if stage == "head" else model.backbone
        return TrainedModel(embedder, self.iteration, preprocessing_of(self.cfg, model.backbone))


def load_embedder(checkpoint: Path, stage: str = "backbone", fix: str | None = None) -> TrainedModel:
    """The network that makes evaluation embeddings, rebuilt from a facetrain checkpoint or a foreign model file.

    Args:
        checkpoint: a facetrain checkpoint (its `config` rebuilds the model), an insightface arcface_torch
            `backbone.pth` state dict, or an `.onnx` face model.
        stage: `backbone` (the deployed descriptor, default) or `head` (after the training head).
        fix: what the setting the file came from takes, for a file that cannot be loaded (default: `model=`'s).
    """
    if stage not in EMBEDDING_STAGES:
        raise FacetrainError(f"embedding={stage!r} is not one of {', '.join(EMBEDDING_STAGES)}")
    if Path(checkpoint).suffix.lower() == ".onnx":
        return _foreign(Path(checkpoint), None, stage)
    state = load_checkpoint(checkpoint) if fix is None else load_checkpoint(checkpoint, fix=fix)
    if is_arcface_state(state):
        return _foreign(Path(checkpoint), state, stage)
    if not is_facetrain_state(state):
        raise FacetrainError(f"{checkpoint} is neither a facetrain checkpoint (no `config`/`model` entries) nor an "
                             "arcface_torch iresnet state dict (no conv1/layer1 keys); pass one of those or an .onnx file")
    return TrainedRun(Path(checkpoint), state).embedder(stage)
