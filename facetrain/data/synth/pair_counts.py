"""How many mismatched pairs a fold or split holds: a draw of n distinct ones must stop with a message, not spin."""

from __future__ import annotations

__all__ = ["cross_pairs"]


def cross_pairs(sizes: list[int]) -> int:
    """How many pairs of items of different groups there are, for groups of these sizes."""
    total = sum(sizes)
    return (total * total - sum(c * c for c in sizes)) // 2
