"""Reproducible identity subsets: a keep list, a minimum of images per identity, a maximum of identities."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facetrain.config import abs_path
from facetrain.errors import FacetrainError

__all__ = ["SUBSET_ORDERS", "count_images", "read_identity_list", "select_identities"]

SUBSET_ORDERS = ("most_images", "name", "random")


def read_identity_list(path: str | Path) -> list[str]:
    """Identity folder names, one per line (the first tab- or space-separated field; `#` comments)."""
    file = abs_path(path)
    if not file.is_file():
        raise FacetrainError(f"identity list {file} does not exist; give a text file with one identity folder per line")
    names = []
    for line in file.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line.split()[0])
    return names


def select_identities(counts: dict[str, int], min_images: int = 1, max_identities: int | None = None,
                      keep: Sequence[str] | None = None, order: str = "most_images", seed: int = 0
                      ) -> tuple[list[str], dict]:
    """Choose the identities to train on, deterministically.

    Steps, in order: keep only the names in `keep` (when given); drop identities with fewer than
    `min_images` images; then, when `max_identities` is set, take that many by `order`:
    `most_images` (largest first, ties by name: the richest identities, as a cleaned MS-Celeb-1M
    subset is usually drawn), `name` (sorted names) or `random` (a permutation drawn from `seed`).

    Args:
        counts: images per identity name.
        min_images: minimum images an identity needs.
        max_identities: keep at most this many (None: all).
        keep: identity names to restrict to (None: all).
        order: how `max_identities` picks.
        seed: the `random` order's seed.

    Returns:
        The chosen names, sorted (labels follow this order), and a report of what each step removed.
    """
    if order not in SUBSET_ORDERS:
        raise FacetrainError(f"data.subset_order={order!r} is not known; use one of {', '.join(SUBSET_ORDERS)}")
    names = sorted(counts)
    report: dict = {"identities_before": len(names)}
    if keep is not None:
        wanted = set(keep)
        report["keep_list_missing"] = len(wanted - set(names))
        names = [n for n in names if n in wanted]
        report["removed_by_keep_list"] = report["identities_before"] - len(names)
    before = len(names)
    names = [n for n in names if counts[n] >= int(min_images)]
    report["removed_by_min_images"] = before - len(names)
    if max_identities is not None and int(max_identities) < len(names):
        if order == "most_images":
            names = sorted(names, key=lambda n: (-counts[n], n))
        elif order == "random":
            names = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
        report["removed_by_max_identities"] = len(names) - int(max_identities)
        names = names[: int(max_identities)]
    return sorted(names), report


def count_images(labels: Sequence[int], classes: Sequence[str]) -> dict[str, int]:
    """Images per identity name."""
    per_label = Counter(labels)
    return {name: per_label.get(i, 0) for i, name in enumerate(classes)}
