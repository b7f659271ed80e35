"""Checkpoints: plain tensors and Python values (loadable with weights_only=True), written atomically."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from facetrain.errors import FacetrainError

__all__ = ["save_checkpoint", "load_checkpoint", "find_checkpoint", "restore_scheduler"]


def _plain(value: Any) -> Any:
    """Replace containers the safe unpickler refuses (MultiStepLR keeps a Counter) by plain ones."""
    if isinstance(value, Counter):
        return {k: int(v) for k, v in value.items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    return value


def save_checkpoint(path: Path, state: dict) -> None:
    """Write to a temporary file and rename, so a crash never leaves a half-written checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(_plain(state), tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FacetrainError(f"checkpoint {path} does not exist") from None
    except Exception as err:  # a truncated or foreign file: say which and why
        raise FacetrainError(f"cannot load checkpoint {path}: {err}") from None


def find_checkpoint(path: Path) -> Path:
    """A checkpoint file, or a run directory holding checkpoints/last.pt."""
    if path.is_dir():
        candidate = path / "checkpoints" / "last.pt"
        if not candidate.exists():
            raise FacetrainError(f"{path} has no checkpoints/last.pt; is it a facetrain run directory?")
        return candidate
    if not path.exists():
        raise FacetrainError(f"{path} does not exist; give a checkpoint file or a run directory")
    return path


def restore_scheduler(scheduler, state: dict) -> None:
    """Load a scheduler state saved by save_checkpoint (undoing _plain's Counter flattening)."""
    scheduler.load_state_dict(state)
    if isinstance(getattr(scheduler, "milestones", None), dict):
        scheduler.milestones = Counter(scheduler.milestones)
