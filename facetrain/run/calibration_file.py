"""calibration.json: score thresholds at fixed FARs, one entry per evaluation set, merged atomically.

Written by every verification protocol run (`facetrain eval lfw|bin|ijbb|ijbc|ytf`) and by validation while
training, in the eval run and in the model's run; read by `facetrain verify` and copied into an export's card.

    {"format": "facetrain-calibration", "version": 1,
     "sets": {"lfw": {"protocol": "lfw", "set": "lfw", "score": "cosine", "pairs_of": "image",
                      "mirror": "sum", "embedding": "backbone", "decision": "same person when score > threshold",
                      "checkpoint": {"path": ".../checkpoints/last.pt", "iteration": 800},
                      "thresholds": [{"far": 0.001, "resolved": true, "threshold": 0.43, "tar": 0.98,
                                      "impostor_pairs": 3000, "false_accepts": 3, ...}, ...]}}}
"""

from __future__ import annotations

import json
from pathlib import Path

from facetrain.atomic import atomic_write
from facetrain.errors import FacetrainError

__all__ = ["CALIBRATION_FILE", "choose_set", "read_calibration", "threshold_at", "update_calibration"]

CALIBRATION_FILE = "calibration.json"
_FORMAT, _VERSION = "facetrain-calibration", 1
_MAKE_ONE = "make one with `facetrain eval lfw model=RUN` (or eval bin / ijbc / ... on your own pairs)"


def _empty() -> dict:
    return {"format": _FORMAT, "version": _VERSION, "sets": {}}


def read_calibration(path: Path) -> dict:
    """The file's content; one line naming the file when it is missing or not a calibration file."""
    path = Path(path)
    if not path.is_file():
        raise FacetrainError(f"calibration file {path} does not exist; {_MAKE_ONE}")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeError) as err:
        raise FacetrainError(f"calibration file {path} is not JSON ({err}); {_MAKE_ONE}") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("sets"), dict):
        raise FacetrainError(f"{path} is not a facetrain calibration file (no `format: {_FORMAT}` and `sets`); "
                             f"{_MAKE_ONE}")
    return data


def update_calibration(run_dir: Path, records: dict[str, dict]) -> Path:
    """Merge set records into run_dir/calibration.json (a set's record replaces the older one of that name)."""
    path = Path(run_dir) / CALIBRATION_FILE
    try:
        data = read_calibration(path) if path.is_file() else _empty()
    except FacetrainError:
        data = _empty()  # an unreadable older file is replaced rather than blocking the evaluation
    data["sets"].update(records)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def choose_set(data: dict, name: str | None, source: str) -> tuple[str, dict]:
    """The record of set `name`; None: the image-pair set with the most impostor pairs (the finest FARs)."""
    sets = data["sets"]
    if not sets:
        raise FacetrainError(f"{source} holds no calibrated set; {_MAKE_ONE}")
    if name is not None:
        if name not in sets:
            raise FacetrainError(f"calibration_set={name} is not in {source}; it has {', '.join(sorted(sets))}")
        return name, sets[name]
    images = {k: v for k, v in sets.items() if v.get("pairs_of") == "image"} or sets

    def impostors(key: str) -> int:
        return max((t.get("impostor_pairs", 0) for t in images[key].get("thresholds", [])), default=0)

    best = max(sorted(images), key=impostors)
    return best, images[best]


def threshold_at(record: dict, far: float, source: str) -> dict:
    """The threshold entry of `record` for FAR `far`; one line when the set does not list or resolve it."""
    entries = record.get("thresholds", [])
    found = [t for t in entries if abs(float(t["far"]) - far) <= 1e-9 * far]
    listed = ", ".join(f"{float(t['far']):g}" for t in entries if t.get("resolved"))
    if not found:
        raise FacetrainError(f"far={far:g} is not calibrated in {source}; resolved FARs there: {listed or 'none'}")
    entry = found[0]
    if not entry.get("resolved"):
        raise FacetrainError(f"far={far:g} is not resolved by set {record.get('set')} of {source} "
                             f"({entry.get('reason')}); use one of far={listed or 'none'} or calibrate on a larger "
                             "set (facetrain eval ijbc ...)")
    return entry
