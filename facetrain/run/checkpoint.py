"""Checkpoints: find, load, and save them; what one holds (capture) and putting it back (restore).

A checkpoint is a dict of tensors and plain Python values (loadable with `weights_only=True`):
`model` (a state dict per part: backbone, head, loss), one state dict per stateful training object
(`optimizer`, `scheduler`, `scaler`), `iteration`, `rng`, `num_classes` and `config` (YAML); `best.pt`
also holds `val_best` (the validation score it was saved for: `metric`, `value`).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from facetrain.atomic import atomic_write
from facetrain.errors import FacetrainError

__all__ = ["capture_state", "checkpoint_path", "find_checkpoint", "latest_checkpoint", "load_checkpoint",
           "resolve_checkpoint", "restore_state", "run_of_checkpoint", "save_checkpoint"]

log = logging.getLogger(__name__)


def checkpoint_path(run_dir: Path, name: str = "last") -> Path:
    """<run_dir>/checkpoints/<name>.pt: `last` (resume), later `best`, `diverged`."""
    return Path(run_dir) / "checkpoints" / f"{name}.pt"


def run_of_checkpoint(path: Path) -> Path | None:
    """The run directory a checkpoint belongs to (…/RUN/checkpoints/x.pt), or None for a loose file."""
    return path.parent.parent if path.parent.name == "checkpoints" else None


def save_checkpoint(path: Path, state: dict) -> None:
    """Write to a temporary file and rename, so a crash never leaves a half-written checkpoint."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


_MODEL_FIX = "give a run directory, a checkpoint it wrote, an arcface_torch backbone.pth or an .onnx model"


def load_checkpoint(path: Path, mmap: bool = False, fix: str = _MODEL_FIX) -> dict:
    """The checkpoint's dict on the CPU; `mmap=True` maps the file instead of reading it (to look at a few
    small entries of a large checkpoint). `fix` ends the message when the file cannot be loaded: what the
    setting it came from takes (the default fits `model=`, which also takes an .onnx model)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise FacetrainError(f"checkpoint {path} does not exist") from None
    except Exception as err:  # a truncated or foreign file: say which and why
        raise FacetrainError(f"cannot load checkpoint {path} ({_why_unloadable(path, err)}); {fix}") from None


def _why_unloadable(path: Path, err: Exception) -> str:
    """One short reason: torch's own messages run to several lines of advice about `weights_only`."""
    with open(path, "rb") as f:
        head = f.read(4)
    if isinstance(err, EOFError) or head in (b"", b"PK\x03\x04"):  # torch.save's format is a zip archive
        return "empty, cut short or damaged"
    if (isinstance(err, pickle.UnpicklingError) or "mmap can only be used" in str(err)  # mmap: not a zip
            or head[:1] != b"\x80"):  # neither a zip nor a pickle (torch's old format): text read as opcodes
        return "not a PyTorch checkpoint, or one holding more than tensors and plain values"
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__


def find_checkpoint(path: Path) -> Path:
    """A checkpoint file, or a run directory holding checkpoints/last.pt."""
    if path.is_dir():
        candidate = checkpoint_path(path)
        if not candidate.exists():
            raise FacetrainError(f"{path} has no checkpoints/last.pt; is it a facetrain run directory?")
        return candidate
    if not path.exists():
        raise FacetrainError(f"{path} does not exist; give a checkpoint file or a run directory")
    return path


def latest_checkpoint(runs_dir: Path) -> Path:
    """The newest checkpoints/last.pt under runs_dir (what `model=latest` means)."""
    found = sorted(Path(runs_dir).glob("**/checkpoints/last.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FacetrainError(f"no trained model under {runs_dir}; run `facetrain train` first, "
                             "or pass model=RUN_DIR|CHECKPOINT or features=FILE.npz")
    return found[-1]


def resolve_checkpoint(spec: str, runs_dir: Path) -> Path:
    """`latest` = the newest run's checkpoint under runs_dir; otherwise a checkpoint file or a run directory."""
    if spec == "latest":
        return latest_checkpoint(runs_dir)
    return find_checkpoint(Path(spec).expanduser().resolve())


def _cuda_device(device: torch.device | None) -> torch.device | None:
    """The CUDA device whose generator a run uses (None: the current one), or None without one."""
    if not torch.cuda.is_available() or (device is not None and device.type != "cuda"):
        return None
    index = device.index if device is not None else None
    return torch.device("cuda", torch.cuda.current_device() if index is None else index)


def _rng_state(device: torch.device | None) -> dict:
    """The CPU generator and the training device's CUDA generator (every rank seeds alike and draws alike, so
    rank 0's own device's state is every rank's). Not all visible GPUs': that list (torchrun shows a rank all 8)
    cannot be restored on a machine with fewer."""
    rng = {"torch": torch.get_rng_state()}
    cuda = _cuda_device(device)
    if cuda is not None:
        rng["cuda"] = torch.cuda.get_rng_state(cuda)
    return rng


def _restore_cuda_rng(saved: torch.Tensor | list, device: torch.device | None) -> None:
    """Put a saved CUDA generator state on this rank's device. Older checkpoints hold one state per GPU visible
    to the saving process: the entry of this device's index when there is one (what restoring them all gave
    this device), else the first (rank 0's own device under torchrun)."""
    cuda = _cuda_device(device)
    if cuda is None:
        return
    if isinstance(saved, list | tuple):
        saved = saved[cuda.index] if cuda.index < len(saved) else saved[0]
    torch.cuda.set_rng_state(saved, cuda)


def capture_state(parts: Mapping[str, nn.Module], stateful: Mapping[str, Any], iteration: int, cfg: DictConfig,
                  num_classes: int, device: torch.device | None = None) -> dict:
    """Everything a run needs to continue exactly, as plain tensors and values.

    Args:
        parts: the model's parts by name (backbone, head, loss): their state dicts go under `model`.
        stateful: other objects with `state_dict()` (optimizer, scheduler, scaler), saved by name.
        iteration: the iteration just finished.
        cfg: the run's composed config (saved resolved, so a model can be rebuilt from it alone).
        num_classes: the training identities the classifier was built for.
        device: where the run trains (its CUDA generator is saved; None: the current CUDA device, if any).
    """
    return {
        "model": {name: module.state_dict() for name, module in parts.items()},
        **{name: obj.state_dict() for name, obj in stateful.items()},
        "iteration": int(iteration),
        "rng": _rng_state(device),
        "num_classes": int(num_classes),
        "config": OmegaConf.to_yaml(cfg, resolve=True),
    }


def restore_state(state: dict, parts: Mapping[str, nn.Module], stateful: Mapping[str, Any],
                  device: torch.device | None = None) -> int:
    """Load what `capture_state` saved into freshly built objects; returns the iteration to continue after.

    Each object's own `load_state_dict` does the work, so any torch optimizer, LR scheduler or grad
    scaler resumes exactly; build the scheduler before restoring the optimizer it wraps. The saved CUDA
    generator goes to `device` (None: the current CUDA device), whatever number of GPUs saved it.
    """
    for name, module in parts.items():
        module.load_state_dict(state["model"][name])
    for name, obj in stateful.items():
        obj.load_state_dict(state[name])
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"]:
        _restore_cuda_rng(state["rng"]["cuda"], device)
    return int(state["iteration"])
