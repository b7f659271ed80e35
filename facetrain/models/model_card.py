"""The model card: a JSON file beside an exported model saying how to feed it and how to read its scores.

An exported file alone does not say which crop, colour order or threshold it was trained and calibrated for;
a mismatch there costs accuracy silently. `facetrain export` writes `<file>.json` (e.g. `backbone.onnx.json`)
with the input (size, channels, order, dtype, the pixel normalization inside the model), the 5-point alignment
template at the crop size, the embedding size, the run's calibration thresholds, the training run and the
parity check; `facetrain verify model=<file>` reads it and refuses a card whose checksum or shapes differ
from the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from facetrain.atomic import atomic_write
from facetrain.data.images.alignment import template_for
from facetrain.errors import FacetrainError

__all__ = ["CARD_FORMAT", "LANDMARK_ORDER", "alignment_entry", "card_path", "file_sha256", "read_card", "write_card"]

CARD_FORMAT, CARD_VERSION = "facetrain-model-card", 1
LANDMARK_ORDER = ["left eye", "right eye", "nose tip", "left mouth corner", "right mouth corner"]  # as seen in the image


def card_path(model_file: Path) -> Path:
    """`<model file>.json`: one card per file, so a .pt and an .onnx of one run never share a card."""
    model_file = Path(model_file)
    return model_file.with_name(model_file.name + ".json")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def alignment_entry(size) -> dict:
    """The crop an exported model expects: the 5 landmarks warped onto this template (Umeyama 1991 similarity)."""
    h, w = int(size[0]), int(size[1])
    return {"method": "similarity transform of 5 landmarks onto the template (Umeyama 1991, least squares)",
            "template": "SphereFace 112x96, scaled by height/112 and centred horizontally",
            "crop_size": [h, w], "landmarks": LANDMARK_ORDER,
            "template_points": [[round(float(x), 4), round(float(y), 4)] for x, y in template_for((h, w))],
            "coordinates": "pixels, pixel (i, j) centred at x=j, y=i"}


def write_card(model_file: Path, card: dict) -> Path:
    """Write the card beside `model_file` atomically; its `sha256` ties it to the file's bytes."""
    card = {"format": CARD_FORMAT, "version": CARD_VERSION, "model_file": Path(model_file).name,
            "sha256": file_sha256(model_file)} | card
    text = json.dumps(card, indent=2) + "\n"
    return atomic_write(card_path(model_file), lambda tmp: tmp.write_text(text))


def read_card(model_file: Path) -> dict | None:
    """The card of `model_file` (None when there is none); one line when it is damaged or belongs to other bytes."""
    path = card_path(model_file)
    if not path.is_file():
        return None
    try:
        card = json.loads(path.read_text())
    except (ValueError, UnicodeError) as err:
        raise FacetrainError(f"model card {path} is not JSON ({err}); re-export with `facetrain export`") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise FacetrainError(f"{path} is not a facetrain model card (no `format: {CARD_FORMAT}`); remove it or "
                             "re-export with `facetrain export`")
    if card.get("sha256") != file_sha256(model_file):
        raise FacetrainError(f"model card {path} does not match {model_file} (its sha256 differs: the file was "
                             "changed or replaced); re-export with `facetrain export` to write both together")
    return card
