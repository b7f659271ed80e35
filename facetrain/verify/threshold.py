"""The decision threshold of `facetrain verify`: a calibrated FAR's threshold, and where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facetrain.config import abs_path
from facetrain.errors import FacetrainError
from facetrain.run.calibration_file import choose_set, read_calibration, threshold_at
from facetrain.verify.model import VerifyModel

__all__ = ["Threshold", "find_threshold"]


@dataclass(frozen=True)
class Threshold:
    value: float
    far: float
    tar: float | None
    set_name: str
    record: dict  # the set's calibration entry (mirror, embedding, checkpoint, pairs_of)
    source: str  # the calibration file (or card) it was read from

    def describe(self) -> str:
        """`threshold 0.4312 at FAR 1e-3 (TAR 97.8%) on set lfw, 3000 impostor pairs, iteration 800, from FILE`."""
        entry = next(t for t in self.record["thresholds"] if abs(t["far"] - self.far) <= 1e-9 * self.far)
        tar = "" if self.tar is None else f", TAR {100 * self.tar:.1f}%"
        it = (self.record.get("checkpoint") or {}).get("iteration")
        at = f", iteration {it}" if it else ""
        return (f"threshold {self.value:.4f} at FAR {self.far:g}{tar} on set {self.set_name} "
                f"({entry['impostor_pairs']} impostor pairs{at}) from {self.source}")


def _how_to_make(model: VerifyModel) -> str:
    return (f"`facetrain eval lfw model={model.path}` writes calibration.json (or eval bin / ijbc on your own pairs); "
            "pass calibration=FILE to use one from elsewhere, or calibration=none for scores without a decision")


def find_threshold(model: VerifyModel, calibration: str | None, far: float, set_name: str | None
                   ) -> Threshold | None:
    """The threshold at `far` from `calibration` (a file), else the exported file's card, else the run's file.

    Returns None for `calibration=none` (scores only). One line when there is no calibration or it cannot
    resolve `far`.
    """
    if calibration is not None and str(calibration).lower() == "none":
        return None
    if calibration:
        path = abs_path(str(calibration))
        data, source = read_calibration(path), str(path)
    elif model.card is not None:
        data, source = model.card.get("calibration"), f"the model card of {model.path.name}"
        if not data:
            run = ((model.card.get("training_run") or {}).get("run_dir")) or "RUN"
            raise FacetrainError(f"{model.path} was exported from a run without calibration.json, so its card has no "
                                 f"thresholds; run `facetrain eval lfw model={run}` and export again (the card copies "
                                 "the run's calibration.json), pass calibration=FILE to use one from elsewhere, or "
                                 "calibration=none for scores without a decision")
    else:
        path = model.calibration_file
        if path is None or not Path(path).is_file():
            raise FacetrainError(f"{model.path} has no calibration ({path} does not exist); {_how_to_make(model)}")
        data, source = read_calibration(path), str(path)
    name, record = choose_set(data, set_name, source)
    entry = threshold_at(record, float(far), source)
    return Threshold(float(entry["threshold"]), float(far), entry.get("tar"), name, record, source)
