"""Label checks in a model's embedding space: one person under two names, mislabeled images, evaluation overlap.

An identity's centre is the normalized mean of its images' normalized embeddings. Two identities whose centres
are unusually close are probably one person; an image closer to another identity's centre than to its own (its
own computed without it) by an unusual margin is probably that other person; a training identity whose centre
and an evaluation person's are each other's nearest and unusually close is that person, whatever the folder is
called. faiss finds each centre's and each image's nearest centres.

"Unusual" is relative to the model, which is why the thresholds default to `auto`: how close a model puts two
different people depends on the model, so a fixed cosine fits one model and not the next. Most identities are
clean, so each check's cut is an outlier bound on its own statistic over the whole set: the median plus `z`
robust standard deviations (1.4826 times the median absolute deviation; Hampel 1974; Rousseeuw and Croux 1993),
which a minority of faults does not move. A number instead of `auto` is used as it is.
"""

from __future__ import annotations

import faiss
import numpy as np

__all__ = ["centres", "eval_matches", "merged_identities", "mislabeled_images", "outlier_cut", "own_fit"]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def centres(feats: np.ndarray, labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unit centres [n, D], summed features [n, D], counts [n]) of normalized features by label."""
    sums = np.zeros((n, feats.shape[1]), np.float64)
    np.add.at(sums, labels, feats)
    counts = np.bincount(labels, minlength=n)
    return _unit(sums), sums, counts


def own_fit(feats: np.ndarray, labels: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Each image's cosine to its identity's centre computed without it (NaN: unreadable, or alone in it)."""
    n = int(labels.max()) + 1 if len(labels) else 0
    unit = _unit(feats)
    unit[~ok] = 0
    _, sums, counts = centres(unit[ok], labels[ok], n)
    fit = np.full(len(labels), np.nan, np.float32)
    idx = np.flatnonzero(ok & (counts[labels] > 1))
    fit[idx] = (_unit(sums[labels[idx]] - unit[idx]) * unit[idx]).sum(1)
    return fit


def outlier_cut(values: np.ndarray, z: float) -> float:
    """median + z * 1.4826 * MAD of the finite values: above it a value is an outlier of the set."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("inf")
    med = float(np.median(v))
    return med + z * 1.4826 * float(np.median(np.abs(v - med)))


def _cut(setting, values: np.ndarray, z: float) -> float:
    return outlier_cut(values, z) if str(setting) == "auto" else float(setting)


def _search(base: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(np.ascontiguousarray(base, np.float32))
    return index.search(np.ascontiguousarray(query, np.float32), min(k, len(base)))


def merged_identities(c: np.ndarray, counts: np.ndarray, threshold, z: float, k: int = 10
                      ) -> tuple[list[tuple[int, int, float]], np.ndarray, float]:
    """((a, b, cosine) with a < b for identity pairs whose centres' cosine reaches the cut, each identity's
    cosine to its nearest other centre, the cut: `threshold`, or with `auto` an outlier of those cosines)."""
    live = np.flatnonzero(counts > 0)
    if len(live) < 2:
        return [], np.zeros(0, np.float32), float("inf")
    sims, nbrs = _search(c[live], c[live], k + 1)
    other = (nbrs >= 0) & (nbrs != np.arange(len(live))[:, None])
    nearest = np.where(other, sims, -1.0).max(1).astype(np.float32)
    cut = _cut(threshold, nearest, z)
    found = {}
    for row, col in zip(*np.nonzero(other & (sims >= cut)), strict=True):
        a, b = sorted((int(live[row]), int(live[nbrs[row, col]])))
        found[(a, b)] = float(sims[row, col])
    return sorted((a, b, s) for (a, b), s in found.items()), nearest, cut


def mislabeled_images(feats: np.ndarray, labels: np.ndarray, ok: np.ndarray, sums: np.ndarray, counts: np.ndarray,
                      c: np.ndarray, margin, z: float, k: int = 5
                      ) -> tuple[list[tuple[int, int, float, float]], np.ndarray, float]:
    """((image, closest other identity, cosine to its own centre without it, cosine to that other centre) for
    readable images whose other centre is closer than their own by at least the cut, every checked image's
    difference of the two cosines, the cut: `margin`, or with `auto` an outlier of those differences and > 0)."""
    idx = np.flatnonzero(ok & (counts[labels] > 1))
    if len(idx) == 0:
        return [], np.zeros(0, np.float32), float("inf")
    own = _unit(sums[labels[idx]] - feats[idx])  # leave-one-out: an image does not pull its own centre
    own_sim = (own * feats[idx]).sum(1)
    sims, nbrs = _search(c, feats[idx], k + 1)
    best = np.full(len(idx), -1)
    gaps = np.full(len(idx), np.nan, np.float32)
    for row, i in enumerate(idx):
        others = [(float(s), int(j)) for s, j in zip(sims[row], nbrs[row], strict=True) if j >= 0 and j != labels[i]]
        if others:
            gaps[row], best[row] = others[0][0] - own_sim[row], others[0][1]
    cut = _cut(margin, gaps, z)
    if str(margin) == "auto":
        cut = max(cut, 0.0)  # at the least, the other identity is closer
    out = [(int(i), int(best[r]), float(own_sim[r]), float(gaps[r] + own_sim[r])) for r, i in enumerate(idx)
           if gaps[r] >= cut]
    return out, gaps[~np.isnan(gaps)], cut


def eval_matches(train_c: np.ndarray, train_counts: np.ndarray, eval_c: np.ndarray, threshold, z: float
                 ) -> tuple[list[tuple[int, int, float]], float]:
    """((training identity, evaluation person, cosine) for each training identity and evaluation person that are
    each other's nearest and whose centres' cosine reaches the cut, the cut: `threshold`, or with `auto` an
    outlier of the training identities' cosines to their nearest evaluation person)."""
    live = np.flatnonzero(train_counts > 0)
    if len(live) == 0 or len(eval_c) == 0:
        return [], float("inf")
    sims, nbrs = _search(eval_c, train_c[live], 1)
    _, back = _search(train_c[live], eval_c, 1)  # each evaluation person's nearest training identity
    cut = _cut(threshold, sims[:, 0], z)
    return [(int(live[r]), int(nbrs[r, 0]), float(sims[r, 0])) for r in range(len(live))
            if sims[r, 0] >= cut and back[nbrs[r, 0], 0] == r], cut
