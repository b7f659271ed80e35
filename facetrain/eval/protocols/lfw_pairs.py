"""Parse LFW's pairs.txt (View 2: `folds<TAB>n`, then per fold n matched and n mismatched lines)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetrain.errors import FacetrainError

__all__ = ["LfwPairs", "lfw_image_path", "parse_lfw_pairs"]


def lfw_image_path(name: str, number: int) -> str:
    """LFW's file naming: `Name/Name_0001.jpg`, relative to the LFW root."""
    return f"{name}/{name}_{number:04d}.jpg"


@dataclass(frozen=True)
class LfwPairs:
    """Pairs in file order (the order defines the folds)."""

    left: list[str]
    right: list[str]
    same: np.ndarray  # bool [P]
    fold: np.ndarray  # int [P], 0-based
    folds: int
    per_fold: int  # n: matched pairs per fold (and as many mismatched)

    def __len__(self) -> int:
        return len(self.left)

    @property
    def images(self) -> list[str]:
        """Every image the protocol needs, once each, sorted."""
        return sorted(set(self.left) | set(self.right))


def _number(token: str, path: Path, line_no: int) -> int:
    if not token.isdigit() or int(token) < 1:
        raise FacetrainError(f"{path}:{line_no}: image number {token!r} is not a positive integer")
    return int(token)


def _header(tokens: list[str], path: Path) -> tuple[int, int]:
    """`folds n` (View 2) or just `n` (View 1's single-fold files)."""
    if len(tokens) in (1, 2) and all(t.isdigit() and int(t) > 0 for t in tokens):
        return (1, int(tokens[0])) if len(tokens) == 1 else (int(tokens[0]), int(tokens[1]))
    raise FacetrainError(f"{path}:1: expected the header `folds<TAB>pairs_per_fold` (e.g. `10\t300`), "
                         f"got {' '.join(tokens)!r}")


def parse_lfw_pairs(path: Path) -> LfwPairs:
    """Read and check a pairs file; every malformed line is reported with its file and line number."""
    if not path.is_file():
        raise FacetrainError(f"pairs file {path} does not exist; set protocol.pairs=... to LFW's pairs.txt")
    lines = [ln.split() for ln in path.read_text().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise FacetrainError(f"{path} is empty")
    folds, n = _header(lines[0], path)
    if len(lines) - 1 != 2 * folds * n:
        raise FacetrainError(f"{path}: the header promises {folds} folds of {n} + {n} pairs "
                             f"({2 * folds * n} lines) but the file has {len(lines) - 1}")
    left, right, same = [], [], []
    for k, tokens in enumerate(lines[1:]):
        line_no, matched = k + 2, (k % (2 * n)) < n
        if matched and len(tokens) == 3:
            a = lfw_image_path(tokens[0], _number(tokens[1], path, line_no))
            b = lfw_image_path(tokens[0], _number(tokens[2], path, line_no))
        elif not matched and len(tokens) == 4:
            a = lfw_image_path(tokens[0], _number(tokens[1], path, line_no))
            b = lfw_image_path(tokens[2], _number(tokens[3], path, line_no))
        else:
            want = "`name<TAB>i<TAB>j` (a matched pair)" if matched else "`name1<TAB>i<TAB>name2<TAB>j` (mismatched)"
            raise FacetrainError(f"{path}:{line_no}: expected {want}, got {len(tokens)} fields: "
                                 f"{' '.join(tokens)!r}")
        left.append(a)
        right.append(b)
        same.append(matched)
    fold = np.repeat(np.arange(folds), 2 * n)
    return LfwPairs(left, right, np.array(same, dtype=bool), fold, folds, n)
