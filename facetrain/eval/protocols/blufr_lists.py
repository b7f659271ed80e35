"""Parse the BLUFR list files (Liao et al. 2014, `list/lfw/*.txt`): image list, labels and the 10 trials' sets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetrain.errors import FacetrainError

__all__ = ["BlufrLists", "blufr_image_path", "parse_blufr_lists"]

_LFW_NAME = re.compile(r"^(.+)_\d{4}\.\w+$")


def blufr_image_path(filename: str) -> str:
    """`Aaron_Eckhart_0001.jpg` -> `Aaron_Eckhart/Aaron_Eckhart_0001.jpg` (LFW's folder layout)."""
    match = _LFW_NAME.match(filename)
    return f"{match.group(1)}/{filename}" if match else filename


@dataclass(frozen=True)
class BlufrLists:
    images: list[str]  # paths relative to the LFW root, in image_list.txt order
    labels: np.ndarray  # int [N]
    train: list[np.ndarray]  # per trial: 0-based indices into images
    test: list[np.ndarray]
    gallery: list[np.ndarray]
    probe: list[np.ndarray]

    @property
    def trials(self) -> int:
        return len(self.test)


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FacetrainError(f"BLUFR list {path} does not exist; set protocol.lists=... to BLUFR's list/lfw folder")
    return path.read_text().splitlines()


def _index_sets(path: Path, names: list[str], blocks: int | None) -> list[np.ndarray]:
    """`n` then n lines `index, filename` (once, or `blocks` times after a first line with the count)."""
    lines, pos, sets = _lines(path), 0, []

    def count(line_no: int) -> int:
        token = lines[line_no].strip() if line_no < len(lines) else ""
        if not token.isdigit():
            raise FacetrainError(f"{path}:{line_no + 1}: expected a count, got {token!r}")
        return int(token)

    if blocks is None:
        blocks, pos = count(0), 1
    for _ in range(blocks):
        n, start = count(pos), pos + 1
        idx = []
        for k in range(start, start + n):
            fields = [f.strip() for f in lines[k].split(",")] if k < len(lines) else []
            if len(fields) != 2 or not fields[0].isdigit() or not 1 <= int(fields[0]) <= len(names):
                raise FacetrainError(f"{path}:{k + 1}: expected `index, filename` with 1 <= index <= {len(names)}")
            if fields[1] != names[int(fields[0]) - 1]:
                raise FacetrainError(f"{path}:{k + 1}: index {fields[0]} is {names[int(fields[0]) - 1]} in "
                                     f"image_list.txt, not {fields[1]}")
            idx.append(int(fields[0]) - 1)
        sets.append(np.array(idx, dtype=int))
        pos = start + n
    return sets


def parse_blufr_lists(folder: Path) -> BlufrLists:
    """Read image_list.txt, labels.txt and {train,test,gallery,probe}_set.txt; check they agree."""
    names = [ln.strip() for ln in _lines(folder / "image_list.txt") if ln.strip()]
    raw = [ln.strip() for ln in _lines(folder / "labels.txt") if ln.strip()]
    if len(raw) != len(names) or not all(r.isdigit() for r in raw):
        raise FacetrainError(f"{folder / 'labels.txt'} must hold one integer label per image_list.txt line "
                             f"({len(names)}); it has {len(raw)} lines")
    sets = {s: _index_sets(folder / f"{s}_set.txt", names, None) for s in ("train", "test", "gallery", "probe")}
    if len({len(v) for v in sets.values()}) != 1:
        raise FacetrainError(f"{folder}: the set files hold different numbers of trials")
    return BlufrLists([blufr_image_path(n) for n in names], np.array([int(r) for r in raw]), **sets)
