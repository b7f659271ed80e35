"""Five-point landmark lists: `path x1 y1 ... x5 y5` per line (optionally `path label x1 y1 ... x5 y5`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facetrain.errors import FacetrainError

__all__ = ["landmarks_line", "read_landmarks", "read_landmarks_log"]


def read_landmarks(file: Path) -> dict[str, np.ndarray]:
    """Image path (relative to the tree's root, `/`-separated) → [5, 2] float (x, y) pixel coordinates.

    Points in order: left eye, right eye, nose tip, left mouth corner, right mouth corner (left and
    right as seen in the image). Fields are separated by spaces or tabs. A line with 12 fields
    carries a class label after the path (SphereFace's `casia_landmark.txt`); it is ignored.
    Empty lines and `#` comments are skipped; anything else malformed stops with its line number.
    """
    if not file.is_file():
        raise FacetrainError(f"landmarks file {file} does not exist; set align.landmarks=... to a file of "
                             "`path x1 y1 ... x5 y5` lines")
    points: dict[str, np.ndarray] = {}
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) not in (11, 12):
            raise FacetrainError(f"{file}:{number}: expected `path x1 y1 ... x5 y5` (11 fields) or "
                                 f"`path label x1 y1 ... x5 y5` (12), got {len(fields)} fields")
        try:
            coords = np.array([float(v) for v in fields[-10:]]).reshape(5, 2)
        except ValueError:
            raise FacetrainError(f"{file}:{number}: the 10 coordinates must be numbers") from None
        points[fields[0].replace("\\", "/").lstrip("./")] = coords
    return points


def landmarks_line(path: str, points: np.ndarray) -> str:
    """One `path x1 y1 ... x5 y5` line (what read_landmarks reads), to 0.01 pixel."""
    return path + "".join(f" {v:.2f}" for v in np.asarray(points, dtype=np.float64).ravel()) + "\n"


def read_landmarks_log(file: Path) -> dict[str, np.ndarray]:
    """The complete lines of a landmarks file that was being appended to when its writer was killed.

    A torn last line (no newline, or too few fields) is dropped: its image is detected again.
    """
    if not file.is_file():
        return {}
    points = {}
    for line in file.read_text().splitlines(keepends=True):
        fields = line.split()
        if not line.endswith("\n") or len(fields) != 11:
            continue
        try:
            points[fields[0]] = np.array([float(v) for v in fields[1:]]).reshape(5, 2)
        except ValueError:
            continue
    return points
