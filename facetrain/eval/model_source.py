"""Find and load the model to evaluate: a checkpoint, a run directory, or the newest run."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from facetrain.errors import FacetrainError
from facetrain.train.checkpoint import find_checkpoint, load_checkpoint

__all__ = ["load_backbone", "resolve_model"]


def resolve_model(model: str, runs_dir: Path) -> Path:
    """`latest` = the newest checkpoints/last.pt under runs_dir; otherwise a file or run directory."""
    if model != "latest":
        return find_checkpoint(Path(model).expanduser().resolve())
    found = sorted(runs_dir.glob("**/checkpoints/last.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FacetrainError(f"no trained model under {runs_dir}; run `facetrain train` first, "
                             "or pass model=RUN_DIR|CHECKPOINT or features=FILE.npz")
    return found[-1]


def load_backbone(checkpoint: Path) -> nn.Module:
    """Rebuild the backbone from the config stored in the checkpoint and load its weights."""
    state = load_checkpoint(checkpoint)
    if "config" not in state or "model" not in state:
        raise FacetrainError(f"{checkpoint} is not a facetrain checkpoint (no `config`/`model` entries)")
    backbone = instantiate(OmegaConf.create(state["config"]).backbone)
    backbone.load_state_dict(state["model"]["backbone"])
    return backbone
