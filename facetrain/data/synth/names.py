"""Pronounceable, unique, deterministic person names in LFW's `First_Last` form."""

from __future__ import annotations

import numpy as np

__all__ = ["person_names"]

_ONSETS = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "ch",
           "dr", "gr", "kr", "sh", "st", "th", "tr"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou"]
_CODAS = ["", "", "n", "r", "s", "l", "m", "nd", "rt", "x"]


def _word(rng: np.random.Generator, syllables: int) -> str:
    parts = [_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))] for _ in range(syllables)]
    return ("".join(parts) + _CODAS[rng.integers(len(_CODAS))]).capitalize()


def person_names(count: int, seed: int) -> list[str]:
    """`count` distinct names, the same for the same seed."""
    rng = np.random.default_rng([seed, 7])
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        name = f"{_word(rng, int(rng.integers(1, 3)))}_{_word(rng, int(rng.integers(2, 4)))}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names
