"""An RFW-shaped tree (Wang et al. 2019): four groups, each its own synthetic population, pairs list and images.

`data/<Group>/<id>/<id>_<NNNN>.jpg` and `txts/<Group>/<Group>_pairs.txt` (RFW's: LFW's pairs lines with no
header, 10 folds of n matched then n mismatched pairs, people never crossing folds), ids in RFW's Freebase
form (`m.0abc12`). A group is a population: its people's skin tone lies in its own band of the synthetic
range and their hair colours come from its own palette, so within a group faces differ in fewer ways —
the kind of shift a model trained on the whole range meets on one group.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from facetrain.data.synth.identity import sample_identity
from facetrain.data.synth.nuisance import sample_nuisance
from facetrain.data.synth.render import render_face

__all__ = ["RFW_GROUPS", "rfw_pairs_path", "write_rfw"]

_RFW = 8  # random stream of the RFW people
RFW_GROUPS = ("African", "Asian", "Caucasian", "Indian")  # RFW's four test subsets
_FOLDS = 10
_LIGHT, _DARK = np.array([238, 205, 180]), np.array([85, 58, 42])  # the synthetic skin range's two ends
# group -> (skin band as fractions from light to dark, hair palette)
_POPULATIONS = {
    "African": ((0.70, 1.00), [(25, 20, 18), (40, 30, 25)]),
    "Asian": ((0.15, 0.40), [(25, 20, 18), (35, 28, 24)]),
    "Caucasian": ((0.00, 0.25), [(70, 45, 30), (120, 80, 45), (200, 165, 100), (150, 60, 30), (140, 140, 140)]),
    "Indian": ((0.45, 0.75), [(25, 20, 18), (45, 32, 25), (70, 45, 30)]),
}


def rfw_pairs_path(root: Path, group: str) -> Path:
    """RFW's pairs list of one group: `txts/<Group>/<Group>_pairs.txt`."""
    return root / "txts" / group / f"{group}_pairs.txt"


def _person(seed: int, group: int, person: int):
    """One person of a group: the generic draw, its skin and hair moved into the group's population."""
    rng = np.random.default_rng([seed, _RFW, group, person])
    ident = sample_identity(rng)
    (low, high), palette = _POPULATIONS[RFW_GROUPS[group]]
    skin = _LIGHT + (_DARK - _LIGHT) * rng.uniform(low, high) + rng.normal(0, 6, 3)
    hair = np.array(palette[int(rng.integers(len(palette)))]) + rng.normal(0, 8, 3)
    as_rgb = lambda c: tuple(int(v) for v in np.clip(c, 0, 255))  # noqa: E731
    return dataclasses.replace(ident, skin=as_rgb(skin), hair=as_rgb(hair), lip=as_rgb(skin * 0.7 + [45, 12, 15]))


def _render(args) -> int:
    """All images of one person (a worker-process task)."""
    seed, group, person, count, folder, name, size, quality = args
    ident = _person(seed, group, person)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        rng = np.random.default_rng([seed, _RFW, group, person, k + 1])
        render_face(ident, sample_nuisance(rng), rng, size=(size[1], size[0])).save(
            folder / f"{name}_{k + 1:04d}.jpg", quality=quality)
    return count


def _mid(rng: np.random.Generator) -> str:
    """An id in RFW's Freebase form, `m.0` and five base-36 characters."""
    return "m.0" + "".join(rng.choice(list("0123456789abcdefghijklmnopqrstuvwxyz"), 5))


def write_rfw(out: Path, seed: int, n: int, people_per_fold: int, max_images: int, size: tuple[int, int],
              quality: int, run: Callable, pairs_of: Callable) -> dict:
    """Write the four groups under `out` (`data/`, `txts/`); `pairs_of` draws LFW-style pairs per fold
    (`trees.lfw_pairs`, told the tree and its settings). Returns {rfw_pairs: pairs per group, rfw_images:
    images in all}."""
    tasks, lines = [], {}
    for g, group in enumerate(RFW_GROUPS):
        rng = np.random.default_rng([seed, _RFW, g])
        names: list[str] = []
        while len(names) < _FOLDS * people_per_fold:
            name = _mid(rng)
            names += [name] if name not in names else []
        counts = {name: int(rng.integers(2, max_images + 1)) for name in names}
        tasks += [(seed, g, p, counts[name], out / "data" / group / name, name, size, quality)
                  for p, name in enumerate(names)]
        folds = [names[f::_FOLDS] for f in range(_FOLDS)]
        pairs = pairs_of(counts, folds, n, rng, f"RFW {group}", "synth.rfw")  # its messages name synth.rfw_*
        lines[group] = ["\t".join(str(x) for x in row) for row in pairs]
    images = sum(t[3] for t in tasks)
    run(_render, tasks, images, "synth rfw")
    for group, rows in lines.items():
        path = rfw_pairs_path(out, group)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(rows) + "\n")
    return {"rfw_pairs": 2 * _FOLDS * n, "rfw_images": images}
