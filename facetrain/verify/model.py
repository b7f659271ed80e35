"""The model `facetrain verify` embeds with: a facetrain run, an outside model, or an exported file with its card."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facetrain.config import abs_path
from facetrain.errors import FacetrainError
from facetrain.models.exported_model import load_carded
from facetrain.models.model_card import card_path, read_card
from facetrain.models.trained_run import TrainedModel, load_embedder
from facetrain.run.calibration_file import CALIBRATION_FILE
from facetrain.run.checkpoint import resolve_checkpoint, run_of_checkpoint

__all__ = ["VerifyModel", "open_model"]


@dataclass(frozen=True)
class VerifyModel:
    trained: TrainedModel
    path: Path  # the checkpoint or model file
    calibration_file: Path | None  # where its own calibration lives (a run's calibration.json)
    card: dict | None  # an exported file's model card

    @property
    def kind(self) -> str:
        return "exported file" if self.card is not None else "checkpoint"


def open_model(spec: str, runs_dir: Path, embedding: str = "backbone") -> VerifyModel:
    """`model=`: a run directory, a checkpoint, `latest`, an arcface_torch .pth, an .onnx file, or an export.

    An exported file (TorchScript `.pt` or `.onnx`) with a card beside it is fed as its card says; a TorchScript
    file without one cannot be read (its input size is not in it).
    """
    if spec in ("", "None", "null"):
        raise FacetrainError("model= is empty; give a run directory, a checkpoint, or an exported .onnx / .pt")
    path = Path(spec).expanduser()
    path = path if path.is_absolute() or spec == "latest" else abs_path(spec)
    if spec != "latest" and not path.exists():
        raise FacetrainError(f"model {path} does not exist; give a run directory, a checkpoint, or an exported "
                             "file (facetrain export writes one)")
    if path.is_file():
        card = read_card(path)
        if card is not None:
            if embedding != "backbone":
                raise FacetrainError(f"embedding={embedding} needs a facetrain checkpoint; {path} is an exported "
                                     "backbone: use embedding=backbone")
            return VerifyModel(load_carded(path, card), path, None, card)
        if path.suffix.lower() == ".onnx":
            return VerifyModel(load_embedder(path, embedding), path, None, None)
        if _is_torchscript(path):
            raise FacetrainError(f"{path} is a TorchScript file without its model card {card_path(path).name}; "
                                 "export it with `facetrain export` (which writes the card) or give the run")
    checkpoint = resolve_checkpoint(spec if spec == "latest" else str(path), abs_path(runs_dir))
    trained = load_embedder(checkpoint, embedding)
    run = run_of_checkpoint(checkpoint)
    return VerifyModel(trained, checkpoint, (run or checkpoint.parent) / CALIBRATION_FILE, None)


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive is a zip holding `constants.pkl` / `code/` (a checkpoint holds `data.pkl` only)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
