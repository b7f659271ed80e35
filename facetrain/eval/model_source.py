"""Find and load the model to evaluate: a checkpoint, a run directory, or the newest run."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from facetrain.errors import FacetrainError
from facetrain.train.checkpoint import find_checkpoint, load_checkpoint

__all__ = ["EMBEDDING_STAGES", "HeadedBackbone", "load_backbone", "load_embedder", "resolve_model"]

EMBEDDING_STAGES = ("backbone", "head")


def resolve_model(model: str, runs_dir: Path) -> Path:
    """`latest` = the newest checkpoints/last.pt under runs_dir; otherwise a file or run directory."""
    if model != "latest":
        return find_checkpoint(Path(model).expanduser().resolve())
    found = sorted(runs_dir.glob("**/checkpoints/last.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FacetrainError(f"no trained model under {runs_dir}; run `facetrain train` first, "
                             "or pass model=RUN_DIR|CHECKPOINT or features=FILE.npz")
    return found[-1]


class HeadedBackbone(nn.Module):
    """Backbone followed by the training head (e.g. L2 x alpha): embeddings "after the head"."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head
        self.input_size, self.embedding_dim = backbone.input_size, backbone.embedding_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def _state(checkpoint: Path) -> dict:
    state = load_checkpoint(checkpoint)
    if "config" not in state or "model" not in state:
        raise FacetrainError(f"{checkpoint} is not a facetrain checkpoint (no `config`/`model` entries)")
    return state


def load_embedder(checkpoint: Path, stage: str = "backbone") -> tuple[nn.Module, int]:
    """The network that makes evaluation embeddings, and the iteration it was saved at.

    Args:
        checkpoint: a facetrain checkpoint.
        stage: `backbone` (the deployed descriptor, default) or `head` (after the training head).
    """
    if stage not in EMBEDDING_STAGES:
        raise FacetrainError(f"embedding={stage!r} is not one of {', '.join(EMBEDDING_STAGES)}")
    state = _state(checkpoint)
    cfg = OmegaConf.create(state["config"])
    backbone = instantiate(cfg.backbone)
    backbone.load_state_dict(state["model"]["backbone"])
    if stage == "head":
        head = instantiate(cfg.head, num_classes=state.get("num_classes"))
        head.load_state_dict(state["model"]["head"])
        backbone = HeadedBackbone(backbone, head)
    return backbone, int(state.get("iteration", 0))


def load_backbone(checkpoint: Path) -> nn.Module:
    """Rebuild the backbone from the config stored in the checkpoint and load its weights."""
    return load_embedder(checkpoint, "backbone")[0]
