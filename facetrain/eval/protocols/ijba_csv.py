"""Parse IJB-A's protocol CSVs (CRLF, a header, empty fields for missing annotation) into templates and pairs.

Per split N: `IJB-A_11_sets/splitN/verify_metadata_N.csv` + `verify_comparisons_N.csv` (no header) for 1:1,
`IJB-A_1N_sets/splitN/search_gallery_N.csv` + `search_probe_N.csv` for 1:N.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetrain.errors import FacetrainError

__all__ = ["IjbaSplit", "TemplateRows", "box_key", "face_keys", "field_int", "find_splits", "load_split",
           "read_comparisons", "read_templates"]

NEEDED = ("TEMPLATE_ID", "SUBJECT_ID", "FILE", "MEDIA_ID", "FACE_X", "FACE_Y", "FACE_WIDTH", "FACE_HEIGHT")


@dataclass(frozen=True)
class TemplateRows:
    """One entry per CSV row: a face of a template."""

    path: Path
    template: np.ndarray  # int [R]
    subject: np.ndarray  # int [R]
    file: list[str]  # relative to the images folder: img/<MEDIA_ID>.jpg or frame/<MEDIA_ID>_<frame>.png
    media: np.ndarray  # int [R]
    box: np.ndarray  # float [R, 4] (x, y, w, h); NaN where the CSV leaves it empty
    line: np.ndarray  # int [R] line number in the CSV

    def subjects(self) -> dict[int, int]:
        """Template id -> subject id."""
        return dict(zip(self.template.tolist(), self.subject.tolist(), strict=True))


def field_int(value: str, path: Path, line: int, column: str) -> int:
    """An integer field of a protocol file, or one line naming the file, line, column and value."""
    try:
        return int(value)
    except ValueError:
        raise FacetrainError(f"{path}:{line}: {column} {value!r} is not an integer") from None


def _float(value: str, path: Path, line: int, column: str) -> float:
    if value.strip() == "":
        return float("nan")
    try:
        return float(value)
    except ValueError:
        raise FacetrainError(f"{path}:{line}: {column} {value!r} is not a number") from None


def read_templates(path: Path) -> TemplateRows:
    """A metadata / gallery / probe / train CSV."""
    if not path.is_file():
        raise FacetrainError(f"IJB-A protocol file {path} does not exist; set data.root (or protocol.sets_11 / "
                             "protocol.sets_1n) to your IJB-A folder")
    with path.open(newline="") as fh:  # newline="" lets csv handle the CRLF line endings
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        lacking = [c for c in NEEDED if c not in header]
        if lacking:
            raise FacetrainError(f"{path}:1: the header lacks {', '.join(lacking)}; expected IJB-A's "
                                 f"`{','.join(NEEDED[:4])},...` columns")
        col = {c: header.index(c) for c in NEEDED}
        cols: dict[str, list] = {c: [] for c in (*NEEDED, "line")}
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise FacetrainError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
            for c in ("TEMPLATE_ID", "SUBJECT_ID", "MEDIA_ID"):
                cols[c].append(field_int(row[col[c]], path, line, c))
            for c in ("FACE_X", "FACE_Y", "FACE_WIDTH", "FACE_HEIGHT"):
                cols[c].append(_float(row[col[c]], path, line, c))
            cols["FILE"].append(row[col["FILE"]].strip())
            cols["line"].append(line)
    box = np.array([cols["FACE_X"], cols["FACE_Y"], cols["FACE_WIDTH"], cols["FACE_HEIGHT"]], dtype=float).T
    return TemplateRows(path, np.array(cols["TEMPLATE_ID"]), np.array(cols["SUBJECT_ID"]), cols["FILE"],
                        np.array(cols["MEDIA_ID"]), box.reshape(-1, 4), np.array(cols["line"]))


def read_comparisons(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """verify_comparisons_N.csv: `templateA,templateB` per line, no header. Returns ([P, 2] ids, line numbers)."""
    if not path.is_file():
        raise FacetrainError(f"IJB-A protocol file {path} does not exist")
    pairs, lines = [], []
    with path.open(newline="") as fh:
        for line, row in enumerate(csv.reader(fh), start=1):
            if not row:
                continue
            if len(row) != 2:
                raise FacetrainError(f"{path}:{line}: expected `templateA,templateB`, got {','.join(row)!r}")
            pairs.append([field_int(row[0], path, line, "template id"), field_int(row[1], path, line, "template id")])
            lines.append(line)
    return np.array(pairs, dtype=int).reshape(-1, 2), np.array(lines)


@dataclass(frozen=True)
class IjbaSplit:
    number: int
    verify: TemplateRows
    comparisons: np.ndarray  # [P, 2] template ids
    comparison_lines: np.ndarray
    gallery: TemplateRows
    probe: TemplateRows


def find_splits(sets_11: Path, wanted: list[int] | None) -> list[int]:
    """The split numbers to score: `wanted`, or every `splitN` folder present."""
    if wanted:
        return sorted(int(n) for n in wanted)
    found = sorted(int(p.name[5:]) for p in sets_11.glob("split*") if p.name[5:].isdigit())
    if not found:
        raise FacetrainError(f"no split folders in {sets_11}; is data.root the IJB-A folder?")
    return found


def load_split(sets_11: Path, sets_1n: Path, n: int) -> IjbaSplit:
    comparisons, lines = read_comparisons(sets_11 / f"split{n}" / f"verify_comparisons_{n}.csv")
    return IjbaSplit(n, read_templates(sets_11 / f"split{n}" / f"verify_metadata_{n}.csv"), comparisons, lines,
                     read_templates(sets_1n / f"split{n}" / f"search_gallery_{n}.csv"),
                     read_templates(sets_1n / f"split{n}" / f"search_probe_{n}.csv"))


def face_keys(tables: list[TemplateRows]) -> dict[tuple[str, tuple], str]:
    """The features-file name of each (FILE, box): FILE itself, or `FILE@x,y,w,h` for a file with several boxes."""
    boxes: dict[str, set[tuple]] = {}
    for t in tables:
        for f, b in zip(t.file, t.box, strict=True):
            boxes.setdefault(f, set()).add(box_key(b))
    return {(f, b): f if len(bs) == 1 else f"{f}@" + ",".join(f"{v:g}" for v in b)
            for f, bs in boxes.items() for b in bs}


def box_key(box: np.ndarray) -> tuple:
    """A hashable box; NaN (empty CSV field) becomes -1 so equal boxes compare equal."""
    return tuple(-1.0 if np.isnan(v) else float(v) for v in box)
