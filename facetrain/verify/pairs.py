"""What `facetrain verify` compares: two photos, every photo of one folder with every photo of another, a CSV of
pairs, or probes against a gallery of identity folders."""

from __future__ import annotations

import csv
from pathlib import Path

from facetrain.config import abs_path
from facetrain.data.formats.file_index import IMAGE_EXTENSIONS
from facetrain.errors import FacetrainError
from facetrain.verify.photos import list_photos

__all__ = ["gallery_photos", "pairs_of_inputs", "read_pairs_csv"]

USAGE = ("give two photos (facetrain verify a.jpg b.jpg model=RUN), two folders (every photo of the first against "
         "every photo of the second), a CSV of pairs (facetrain verify pairs.csv), or probes with gallery=DIR")


def _looks_like_header(row: list[str]) -> bool:
    return not any(field.strip().lower().endswith(IMAGE_EXTENSIONS) for field in row[:2])


def read_pairs_csv(path: Path) -> list[tuple[Path, Path]]:
    """`photo_a,photo_b` per line (an optional header line; paths relative to the CSV's folder)."""
    pairs = []
    with open(path, newline="") as fh:
        for number, row in enumerate(csv.reader(fh), start=1):
            if not row or all(not f.strip() for f in row):
                continue
            if number == 1 and _looks_like_header(row):
                continue
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                raise FacetrainError(f"{path}:{number}: expected `photo_a,photo_b`, got {','.join(row)!r}")
            a, b = (Path(f.strip()) if Path(f.strip()).is_absolute() else path.parent / f.strip() for f in row[:2])
            for photo in (a, b):
                if not photo.is_file():
                    raise FacetrainError(f"{path}:{number}: photo {photo} does not exist; fix the line or the path "
                                         "(relative paths start at the CSV's folder)")
            pairs.append((a, b))
    if not pairs:
        raise FacetrainError(f"{path} lists no pairs; write one `photo_a,photo_b` line per pair")
    return pairs


def pairs_of_inputs(inputs: list[str]) -> tuple[list[tuple[Path, Path]], bool]:
    """The pairs to score, and whether the answer is one pair (printed) rather than a CSV."""
    if len(inputs) == 1 and inputs[0].lower().endswith(".csv"):
        path = abs_path(inputs[0])
        if not path.is_file():
            raise FacetrainError(f"pairs file {path} does not exist; {USAGE}")
        return read_pairs_csv(path), False
    if len(inputs) != 2:
        raise FacetrainError(f"verify got {len(inputs)} input(s); {USAGE}")
    a, b = (abs_path(x) for x in inputs)
    if a.is_dir() != b.is_dir() and a.exists() and b.exists():
        raise FacetrainError(f"{a} and {b}: one is a folder, the other a file; {USAGE}")
    left, right = list_photos(inputs[0]), list_photos(inputs[1])
    single = not a.is_dir()
    return [(x, y) for x in left for y in right], single


def gallery_photos(folder: str) -> tuple[list[Path], list[str]]:
    """The gallery's photos (grouped by identity, identities sorted) and each photo's identity (its folder)."""
    root = abs_path(folder)
    if not root.is_dir():
        raise FacetrainError(f"gallery={root} is not a folder; give a folder of identity folders (DIR/<name>/*.jpg)")
    photos, names = [], []
    for identity in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in identity.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        photos += files
        names += [identity.name] * len(files)
    if not photos:
        raise FacetrainError(f"gallery={root} holds no identity folders with images; lay it out as "
                             "DIR/<identity>/<photo>.jpg")
    return photos, names
