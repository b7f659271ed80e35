"""Exact duplicates (equal pixel digests) and near-duplicate candidates (thumbnails within a cosine distance).

The near search is faiss's: an exact inner-product index up to `exact_limit` images, an inverted-file index
(IVF, about 4*sqrt(N) lists, `nprobe` of them visited) above it, so the search grows about as N^1.5, not N^2.
"""

from __future__ import annotations

import math
from collections import defaultdict

import faiss
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["duplicate_groups", "exact_pairs", "identity_pairs", "keep_first", "merge_pairs", "near_pairs"]


def exact_pairs(digest: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """[P, 2] index pairs (i < j) of readable images with equal pixel digests: each image with its group's first."""
    groups: dict[bytes, list[int]] = defaultdict(list)
    for i in np.flatnonzero(ok):
        groups[bytes(digest[i])].append(int(i))
    pairs = [(g[0], j) for g in groups.values() for j in g[1:]]
    return np.array(pairs, np.int64).reshape(-1, 2)


def near_pairs(thumbs: np.ndarray, ok: np.ndarray, max_distance: float, k: int = 8, exact_limit: int = 50_000,
               nprobe: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """([P, 2] pairs i < j, [P] cosine distances) of readable images whose thumbnails are within `max_distance`.

    Each image's `k` nearest neighbours are searched (a copy has few copies), then cut at the distance.
    """
    index_of = np.flatnonzero(ok)
    x = np.ascontiguousarray(thumbs[index_of], dtype=np.float32)
    n, d = x.shape
    if n < 2:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    if n <= exact_limit:
        index = faiss.IndexFlatIP(d)
    else:
        lists = int(4 * math.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, lists, faiss.METRIC_INNER_PRODUCT)
        index.train(x[np.random.default_rng(0).choice(n, min(n, 64 * lists), replace=False)])
        index.nprobe = nprobe
    index.add(x)
    sims, nbrs = index.search(x, min(k + 1, n))
    rows = np.repeat(np.arange(n), nbrs.shape[1])
    cols, dist = nbrs.ravel(), 1.0 - sims.ravel()
    keep = (cols >= 0) & (cols != rows) & (dist <= max_distance)
    a, b = index_of[rows[keep]], index_of[cols[keep]]
    pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], 1)
    pairs, first = np.unique(pairs, axis=0, return_index=True)
    return pairs, dist[keep][first].astype(np.float32)


def identity_pairs(thumbs: np.ndarray, labels: np.ndarray, ok: np.ndarray, max_distance: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """`near_pairs` within each identity, every pair compared: on a large set the `k` nearest thumbnails can all
    be look-alikes nearer than a copy cropped by a few percent (500,000 synthetic faces: an image's 8th nearest
    within 0.13 for 46% of them), and a copy is most often filed with its source."""
    idx = np.flatnonzero(ok)
    idx = idx[np.argsort(labels[idx], kind="stable")]
    starts = np.flatnonzero(np.r_[True, labels[idx][1:] != labels[idx][:-1], True])
    pairs, dists = [], []
    for lo, hi in zip(starts[:-1], starts[1:], strict=True):
        members = idx[lo:hi]
        x = thumbs[members]
        a, b = np.triu_indices(len(members), 1)  # a < b, and so members[a] < members[b] (a stable sort of ok)
        dist = (1.0 - x @ x.T)[a, b]
        keep = dist <= max_distance
        pairs.append(np.stack([members[a[keep]], members[b[keep]]], 1))
        dists.append(dist[keep])
    if not pairs:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    return np.concatenate(pairs).astype(np.int64), np.concatenate(dists).astype(np.float32)


def merge_pairs(*found: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The union of several (pairs, distances) results, each pair once (sorted)."""
    pairs = np.concatenate([p.reshape(-1, 2) for p, _ in found]).astype(np.int64)
    dist = np.concatenate([d for _, d in found]).astype(np.float32)
    pairs, first = np.unique(pairs, axis=0, return_index=True)
    return pairs, dist[first]


def duplicate_groups(n: int, pairs: np.ndarray) -> list[list[int]]:
    """The connected groups (size >= 2) the pairs link, each sorted, in order of their first member."""
    if len(pairs) == 0:
        return []
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    members: dict[int, list[int]] = defaultdict(list)
    for i in np.unique(pairs):
        members[int(label[i])].append(int(i))
    return sorted((sorted(m) for m in members.values() if len(m) > 1), key=lambda g: g[0])


def keep_first(groups: list[list[int]], labels: np.ndarray, fit: np.ndarray) -> list[list[int]]:
    """Each group with the image to keep moved to the front (the rest stay in order).

    A group is one photo filed several times; a copy under another identity is that photo mislabeled there, so
    the copy kept is one under the photo's own identity: the identity most of the group's copies are filed under,
    and on a tie the one whose other images the copies resemble most (`fit`: each image's cosine to its
    identity's centre computed without it; NaN where unknown); within it, the earliest copy.
    """
    out = []
    for g in groups:
        by_label: dict[int, list[int]] = defaultdict(list)
        for i in g:
            by_label[int(labels[i])].append(i)
        ranks = {}
        for label, members in by_label.items():
            f = fit[members]
            ranks[label] = (len(members), float(np.mean(f)) if np.isfinite(f).all() else -np.inf, -min(members))
        keep = min(by_label[max(ranks, key=ranks.get)])
        out.append([keep, *(i for i in g if i != keep)])
    return out
