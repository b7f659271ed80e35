"""What an audit found, as rows: the CSVs, audit.md and the exclusion list are all written from this."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["EXCLUDABLE", "Findings"]

EXCLUDABLE = ("exact_duplicate", "near_duplicate", "merged_identity", "mislabeled", "eval_overlap", "unreadable")


@dataclass
class Findings:
    """Everything one audit found; `exclusions` turns the kinds asked for into (name, reason) rows."""

    names: list[str]
    labels: np.ndarray
    classes: list[str]
    scan: dict[str, np.ndarray]
    exact_groups: list[list[int]] = field(default_factory=list)
    near_groups: list[list[int]] = field(default_factory=list)
    near_distance: dict[tuple[int, int], float] = field(default_factory=dict)  # a near pair's thumbnail distance
    near_residual: dict[tuple[int, int], float] = field(default_factory=dict)  # and its 1 - NCC once aligned
    nearest_thumb: np.ndarray | None = None  # each image's nearest other thumbnail distance (plot)
    merged: list[tuple[int, int, float, float]] = field(default_factory=list)  # a, b, ratio, centres' cosine
    mislabeled: list[tuple[int, int, float, float]] = field(default_factory=list)
    eval_overlap: list[dict] = field(default_factory=list)  # identity, set, person, ratio, cosine, by
    merge_ratio: np.ndarray | None = None  # each identity's highest ratio to a near identity (plot)
    mislabel_gap: np.ndarray | None = None  # other - own cosine per image (plot)
    counts: np.ndarray | None = None
    quality: dict[str, dict[str, float]] | None = None
    notes: list[str] = field(default_factory=list)
    cuts: dict[str, float] = field(default_factory=dict)  # the model checks' cuts as used (`auto` resolved)
    seconds: dict[str, float] = field(default_factory=dict)  # time of each part: decode, duplicates, embed, ...

    def unreadable(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(~self.scan["ok"])]

    def exclusions(self, kinds) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(images, identities) to leave out, each (name, reason); a group of duplicates keeps its first."""
        images: dict[str, str] = {}
        identities: dict[str, str] = {}
        kinds = set(kinds)
        for kind, groups in (("exact_duplicate", self.exact_groups), ("near_duplicate", self.near_groups)):
            if kind in kinds:
                for g in groups:
                    for i in g[1:]:
                        images.setdefault(self.names[i], f"{kind} of {self.names[g[0]]}")
        if "mislabeled" in kinds:
            for i, other, own, sim in self.mislabeled:
                images.setdefault(self.names[i], f"mislabeled: closer to {self.classes[other]} ({sim:.3f}) than to "
                                                 f"its own identity ({own:.3f})")
        if "unreadable" in kinds:
            for i in self.unreadable():
                images.setdefault(self.names[i], f"unreadable: {self.scan['reason'][i]}")
        if "merged_identity" in kinds:
            for a, b, ratio, _ in self.merged:
                drop, keep = (a, b) if (self.counts[a], b) < (self.counts[b], a) else (b, a)
                identities.setdefault(self.classes[drop], f"merged_identity: probably {self.classes[keep]} "
                                                          f"(cross/own similarity ratio {ratio:.3f})")
        if "eval_overlap" in kinds:
            for row in self.eval_overlap:
                identities.setdefault(row["identity"], f"eval_overlap: {row['person']} of {row['set']} ({row['by']})")
        return sorted(images.items()), sorted(identities.items())
