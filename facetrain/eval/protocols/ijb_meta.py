"""Parse the IJB-B / IJB-C meta files of insightface's evaluation layout (`<root>/meta/`, `<root>/loose_crop/`).

- `<p>_face_tid_mid.txt`: `image_name template_id media_id` per face (one line per loose crop).
- `<p>_template_pair_label.txt`: `template_id1 template_id2 label` per 1:1 comparison (1 = same subject).
- `<p>_name_5pts_score.txt`: `image_name x1 y1 ... x5 y5 detector_score` (left eye, right eye, nose tip,
  left and right mouth corners as seen in the image; the detector's face score).
- `<p>_1N_gallery_G1.csv`, `_G2.csv` (IJB-B: `_S1`, `_S2`) and `<p>_1N_probe_mixed.csv`: NIST's CSVs with a
  header; only `TEMPLATE_ID` and `SUBJECT_ID` are read (the faces of a template come from face_tid_mid).
Fields of the text files are separated by spaces or tabs; empty lines are skipped; a malformed line stops
with its file and line number.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetrain.errors import FacetrainError
from facetrain.eval.protocols.ijba_csv import field_int

__all__ = ["IjbFaces", "IjbPairs", "IjbPoints", "read_face_tid_mid", "read_five_points", "read_pair_labels",
           "read_template_subjects"]


def _require(path: Path) -> None:
    if not path.is_file():
        raise FacetrainError(f"IJB protocol file {path} does not exist; set data.root to the IJB-B/C folder "
                             "(with meta/ and loose_crop/, as insightface's evaluation uses)")


def _lines(path: Path, layout: str, count: int) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-empty line, each with exactly `count` fields."""
    _require(path)
    with path.open() as fh:
        for number, line in enumerate(fh, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != count:
                raise FacetrainError(f"{path}:{number}: expected `{layout}` ({count} fields), got {len(fields)}")
            yield number, fields


def _float(value: str, path: Path, line: int, column: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not np.isfinite(number):
        raise FacetrainError(f"{path}:{line}: {column} {value!r} is not a finite number")
    return number


@dataclass(frozen=True)
class IjbFaces:
    """face_tid_mid: one entry per face of a template."""

    path: Path
    names: list[str]  # image file under loose_crop/
    template: np.ndarray  # int [R]
    media: np.ndarray  # int [R]
    line: np.ndarray  # int [R]


def read_face_tid_mid(path: Path) -> IjbFaces:
    names, template, media, lines = [], [], [], []
    for number, (name, tid, mid) in _lines(path, "image_name template_id media_id", 3):
        names.append(name)
        template.append(field_int(tid, path, number, "template_id"))
        media.append(field_int(mid, path, number, "media_id"))
        lines.append(number)
    if not names:
        raise FacetrainError(f"{path} lists no faces; it should hold `image_name template_id media_id` lines")
    return IjbFaces(path, names, np.array(template), np.array(media), np.array(lines))


@dataclass(frozen=True)
class IjbPairs:
    path: Path
    pairs: np.ndarray  # int [P, 2] template ids
    labels: np.ndarray  # bool [P], True = same subject
    line: np.ndarray  # int [P]


def read_pair_labels(path: Path) -> IjbPairs:
    pairs, labels, lines = [], [], []
    for number, (a, b, label) in _lines(path, "template_id1 template_id2 label", 3):
        pairs.append((field_int(a, path, number, "template_id1"), field_int(b, path, number, "template_id2")))
        value = field_int(label, path, number, "label")
        if value not in (0, 1):
            raise FacetrainError(f"{path}:{number}: label {label!r} must be 1 (same subject) or 0 (different)")
        labels.append(value == 1)
        lines.append(number)
    if not pairs:
        raise FacetrainError(f"{path} lists no pairs; it should hold `template_id1 template_id2 label` lines")
    return IjbPairs(path, np.array(pairs, dtype=int).reshape(-1, 2), np.array(labels, dtype=bool), np.array(lines))


@dataclass(frozen=True)
class IjbPoints:
    """name_5pts_score: landmarks and detector score per image name."""

    path: Path
    index: dict[str, int]  # image name -> row
    points: np.ndarray  # float [N, 5, 2]
    score: np.ndarray  # float [N]
    line: np.ndarray  # int [N]


def read_five_points(path: Path) -> IjbPoints:
    index, points, scores, lines = {}, [], [], []
    for number, fields in _lines(path, "image_name x1 y1 ... x5 y5 detector_score", 12):
        name = fields[0]
        if name in index:
            raise FacetrainError(f"{path}:{number}: {name} is listed again (first on line {lines[index[name]]})")
        coords = np.array([_float(v, path, number, "coordinate") for v in fields[1:11]]).reshape(5, 2)
        if np.ptp(coords, axis=0).max() <= 0:
            raise FacetrainError(f"{path}:{number}: the 5 landmarks of {name} all coincide; fix or remove the line")
        index[name] = len(points)
        points.append(coords)
        scores.append(_float(fields[11], path, number, "detector_score"))
        lines.append(number)
    return IjbPoints(path, index, np.array(points).reshape(-1, 5, 2), np.array(scores), np.array(lines))


def read_template_subjects(path: Path) -> dict[int, int]:
    """A 1:N gallery / probe CSV: template id -> subject id (the CSV has one row per face of a template)."""
    _require(path)
    subjects: dict[int, int] = {}
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip().upper() for h in next(reader, [])]
        if "TEMPLATE_ID" not in header or "SUBJECT_ID" not in header:
            raise FacetrainError(f"{path}:1: the header lacks TEMPLATE_ID or SUBJECT_ID; expected NIST's "
                                 "`TEMPLATE_ID,SUBJECT_ID,FILENAME,...` columns")
        t_col, s_col = header.index("TEMPLATE_ID"), header.index("SUBJECT_ID")
        for number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) <= max(t_col, s_col):
                raise FacetrainError(f"{path}:{number}: {len(row)} fields, the header has {len(header)}")
            tid = field_int(row[t_col], path, number, "TEMPLATE_ID")
            sid = field_int(row[s_col], path, number, "SUBJECT_ID")
            if subjects.setdefault(tid, sid) != sid:
                raise FacetrainError(f"{path}:{number}: template {tid} has subject {sid} here and {subjects[tid]} "
                                     "before; a template belongs to one subject")
    if not subjects:
        raise FacetrainError(f"{path} lists no templates")
    return subjects
