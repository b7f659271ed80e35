"""Parse YouTube Faces' splits.txt: `split, pair, Person/idx, Person/idx, same` (10 splits of 500 pairs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetrain.errors import FacetrainError

__all__ = ["YtfPairs", "parse_ytf_splits"]


@dataclass(frozen=True)
class YtfPairs:
    """Video pairs in file order; a video is `Person/<video index>`."""

    left: list[str]
    right: list[str]
    same: np.ndarray  # bool [P]
    fold: np.ndarray  # int [P], 0-based split
    lines: list[int]  # line number of each pair in the file

    def __len__(self) -> int:
        return len(self.left)

    @property
    def videos(self) -> list[str]:
        return sorted(set(self.left) | set(self.right))


def _is_header(fields: list[str]) -> bool:
    return not fields[0].isdigit()  # the official file's first line names its columns


def _video(token: str, path: Path, line_no: int) -> str:
    parts = token.split("/")
    if len(parts) != 2 or not parts[0] or not parts[1].isdigit():
        raise FacetrainError(f"{path}:{line_no}: video {token!r} is not `Person/<video index>`")
    return token


def parse_ytf_splits(path: Path) -> YtfPairs:
    """Read splits.txt (with or without its header line, LF or CRLF); malformed lines name file and line."""
    if not path.is_file():
        raise FacetrainError(f"splits file {path} does not exist; set protocol.splits=... to YouTube Faces' splits.txt")
    left, right, same, fold, lines = [], [], [], [], []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        fields = [f.strip() for f in line.split(",")]
        if fields == [""]:
            continue
        if line_no == 1 and _is_header(fields):
            continue
        if len(fields) != 5 or not fields[0].isdigit() or not fields[1].isdigit() or fields[4] not in ("0", "1"):
            raise FacetrainError(f"{path}:{line_no}: expected `split, pair, Person/idx, Person/idx, 0|1`, got {line!r}")
        left.append(_video(fields[2], path, line_no))
        right.append(_video(fields[3], path, line_no))
        same.append(fields[4] == "1")
        fold.append(int(fields[0]) - 1)
        lines.append(line_no)
    if not left:
        raise FacetrainError(f"{path} holds no pairs")
    return YtfPairs(left, right, np.array(same, dtype=bool), np.array(fold), lines)
