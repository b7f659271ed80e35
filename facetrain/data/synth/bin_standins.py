"""Synthetic stand-ins for CFP-FP, AgeDB-30, CALFW and CPLFW as insightface `.bin` sets (with lfw.bin: the five).

Each set keeps what makes the real one hard, drawn on new synthetic people (their own random stream):
- `cfp_fp` (Sengupta et al. 2016): a frontal image against a profile one (CFP-FP: frontal-profile pairs);
- `cplfw` (Zheng and Deng 2018): two images turned far to opposite sides, mismatched pairs look-alikes;
- `agedb_30` (Moschoglou et al. 2017): the same person young and aged (greyer, receding hair, heavier face);
- `calfw` (Zheng et al. 2017): the age gap of agedb_30 with look-alike mismatched pairs (CALFW picks
  negatives of the same race and gender to remove that easy cue).
A "look-alike" is the fold's other person closest in skin and hair colour. Pairs come in 10 folds of n matched
then n mismatched pairs, people never crossing folds, so the `.bin`'s consecutive folds hold both labels.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from facetrain.data.synth.identity import Identity, sample_identity
from facetrain.data.synth.nuisance import Nuisance, sample_nuisance
from facetrain.data.synth.render import render_face

__all__ = ["STANDINS", "standin_set", "write_standins"]

_STANDIN = 7  # random stream of the stand-ins' people (never shared with CASIA/LFW/YTF/IJB)
_PER_SIDE = 2  # images per person in each condition (A: frontal / young, B: profile / aged)


def _frontal(nz: Nuisance, rng: np.random.Generator) -> Nuisance:
    return dataclasses.replace(nz, yaw=float(rng.normal(0, 0.05)), pitch=float(nz.pitch / 2))


def _profile(nz: Nuisance, rng: np.random.Generator, side: float | None = None) -> Nuisance:
    side = side if side is not None else rng.choice([-1.0, 1.0])
    return dataclasses.replace(nz, yaw=float(side * rng.uniform(0.65, 0.8)))


def _aged(ident: Identity, rng: np.random.Generator) -> Identity:
    """The person some 30 years on: hair greying, hairline receding, a heavier face, thinner lips, glasses."""
    grey = rng.uniform(0.4, 0.9)
    hair = tuple(int((1 - grey) * h + grey * 190) for h in ident.hair)
    return dataclasses.replace(
        ident, hair=hair, hairline=float(min(1.0, ident.hairline + rng.uniform(0.2, 0.5))),
        face_rx=ident.face_rx * rng.uniform(1.02, 1.08), face_ry=ident.face_ry * rng.uniform(0.98, 1.04),
        lip_thick=ident.lip_thick * 0.75, brow_thick=ident.brow_thick * rng.uniform(0.8, 1.1),
        glasses=ident.glasses or int(rng.choice([0, 1, 2], p=[0.6, 0.2, 0.2])),
        beard=ident.beard if rng.random() < 0.7 else float(rng.uniform(0.4, 1.0) * (ident.beard == 0)))


# set -> (how side A and side B images of a person are drawn, mismatched pairs look-alikes)
_Side = Callable[[Identity, Nuisance, np.random.Generator, int], tuple[Identity, Nuisance]]
STANDINS: dict[str, tuple[_Side, _Side, bool]] = {
    "cfp_fp": (lambda i, n, r, k: (i, _frontal(n, r)), lambda i, n, r, k: (i, _profile(n, r)), False),
    "cplfw": (lambda i, n, r, k: (i, _profile(n, r, -1.0)), lambda i, n, r, k: (i, _profile(n, r, 1.0)), True),
    "agedb_30": (lambda i, n, r, k: (i, n), lambda i, n, r, k: (_aged(i, np.random.default_rng(k)), n), False),
    "calfw": (lambda i, n, r, k: (i, n), lambda i, n, r, k: (_aged(i, np.random.default_rng(k)), n), True),
}


def _jpeg(ident: Identity, nz: Nuisance, rng: np.random.Generator, size: tuple[int, int], quality: int) -> bytes:
    buf = io.BytesIO()
    render_face(ident, nz, rng, size=(size[1], size[0])).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _person_images(args) -> list[bytes]:
    """[A_1..A_k, B_1..B_k] of one person of one set (a worker-process task)."""
    name, seed, set_index, person, size, quality = args
    side_a, side_b, _ = STANDINS[name]
    ident = sample_identity(np.random.default_rng([seed, _STANDIN, set_index, person]))
    ageing_seed = [seed, _STANDIN, set_index, person, 0]  # one aged look per person, shared by its B images
    out = []
    for s, side in enumerate((side_a, side_b)):
        for k in range(_PER_SIDE):
            rng = np.random.default_rng([seed, _STANDIN, set_index, person, 1 + s * _PER_SIDE + k])
            ident_k, nz = side(ident, sample_nuisance(rng), rng, ageing_seed)
            out.append(_jpeg(ident_k, nz, rng, size, quality))
    return out


def _look(ident: Identity) -> np.ndarray:
    return np.array([*ident.skin, *ident.hair], dtype=float)


def standin_set(name: str, seed: int, folds: int, n: int, size: tuple[int, int], quality: int,
                run: Callable) -> tuple[list[bytes], list[bool]]:
    """(2P encoded images, P labels) of one stand-in: `folds` runs of n matched then n mismatched pairs."""
    set_index = list(STANDINS).index(name)
    per_fold = max(2, -(-n // (_PER_SIDE * _PER_SIDE)) + 1)  # enough people for n matched pairs (A_i, B_j)
    people = folds * per_fold
    tasks = [(name, seed, set_index, p, size, quality) for p in range(people)]
    images = run(_person_images, tasks, people * 2 * _PER_SIDE, f"synth {name}.bin")
    looks = [_look(sample_identity(np.random.default_rng([seed, _STANDIN, set_index, p]))) for p in range(people)]
    rng = np.random.default_rng([seed, _STANDIN, set_index])
    look_alike = STANDINS[name][2]
    pairs, same = [], []
    for f in range(folds):
        mine = list(range(f * per_fold, (f + 1) * per_fold))
        matched = [(p, i, p, _PER_SIDE + j) for p in mine for i in range(_PER_SIDE) for j in range(_PER_SIDE)]
        pairs += [matched[k] for k in sorted(rng.choice(len(matched), n, replace=False))]
        for _ in range(n):
            p = int(rng.choice(mine))
            others = [q for q in mine if q != p]
            q = min(others, key=lambda q: np.abs(looks[q] - looks[p]).sum()) if look_alike else int(rng.choice(others))
            pairs.append((p, int(rng.integers(_PER_SIDE)), q, _PER_SIDE + int(rng.integers(_PER_SIDE))))
        same += [True] * n + [False] * n
    flat = []
    for a, i, b, j in pairs:
        flat += [images[a][i], images[b][j]]
    return flat, same


def write_standins(out: Path, seed: int, folds: int, n: int, size: tuple[int, int], quality: int, run: Callable,
                   write_bin: Callable) -> dict:
    """`out/<set>.bin` for each stand-in; returns {<set>_pairs: P}."""
    summary = {}
    for name in STANDINS:
        images, same = standin_set(name, seed, folds, n, size, quality, run)
        write_bin(out / f"{name}.bin", images, same)
        summary[f"{name}_pairs"] = len(same)
    return summary
