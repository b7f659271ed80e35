"""Label checks in a model's embedding space: one person under two names, mislabeled images, evaluation overlap.

An identity's centre is the normalized mean of its images' normalized embeddings. Two identities whose centres
are closer than a photo usually is to its own centre are probably one person; an image much closer to another
identity's centre than to its own (its own computed without it) is probably that other person; a training
identity whose centre matches an evaluation person's centre is that person, whatever the folder is called.
faiss finds each centre's and each image's nearest centres.
"""

from __future__ import annotations

import faiss
import numpy as np

__all__ = ["centres", "eval_matches", "merged_identities", "mislabeled_images", "own_fit"]


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


def _search(base: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(np.ascontiguousarray(base, np.float32))
    return index.search(np.ascontiguousarray(query, np.float32), min(k, len(base)))


def merged_identities(c: np.ndarray, counts: np.ndarray, threshold: float, k: int = 10
                      ) -> tuple[list[tuple[int, int, float]], np.ndarray]:
    """((a, b, cosine) with a < b for identity pairs whose centres' cosine is at least `threshold`, each
    identity's cosine to its nearest other centre)."""
    live = np.flatnonzero(counts > 0)
    if len(live) < 2:
        return [], np.zeros(0, np.float32)
    sims, nbrs = _search(c[live], c[live], k + 1)
    found, nearest = {}, np.full(len(live), -1.0, np.float32)
    for row, (s_row, n_row) in enumerate(zip(sims, nbrs, strict=True)):
        for s, j in zip(s_row, n_row, strict=True):
            if j < 0 or j == row:
                continue
            nearest[row] = max(nearest[row], s)
            if s >= threshold:
                a, b = sorted((int(live[row]), int(live[j])))
                found[(a, b)] = float(s)
    return sorted((a, b, s) for (a, b), s in found.items()), nearest


def mislabeled_images(feats: np.ndarray, labels: np.ndarray, ok: np.ndarray, sums: np.ndarray, counts: np.ndarray,
                      c: np.ndarray, margin: float, k: int = 5
                      ) -> tuple[list[tuple[int, int, float, float]], np.ndarray]:
    """((image, closest other identity, cosine to its own centre without it, cosine to that other centre) for
    readable images whose other centre is closer than their own by at least `margin`, every checked image's
    difference of the two cosines)."""
    idx = np.flatnonzero(ok & (counts[labels] > 1))
    if len(idx) == 0:
        return [], np.zeros(0, np.float32)
    own = _unit(sums[labels[idx]] - feats[idx])  # leave-one-out: an image does not pull its own centre
    own_sim = (own * feats[idx]).sum(1)
    sims, nbrs = _search(c, feats[idx], k + 1)
    out, gaps = [], np.full(len(idx), np.nan, np.float32)
    for row, i in enumerate(idx):
        others = [(float(s), int(j)) for s, j in zip(sims[row], nbrs[row], strict=True) if j >= 0 and j != labels[i]]
        if others:
            gaps[row] = others[0][0] - own_sim[row]
            if gaps[row] >= margin:
                out.append((int(i), others[0][1], float(own_sim[row]), others[0][0]))
    return out, gaps[~np.isnan(gaps)]


def eval_matches(train_c: np.ndarray, train_counts: np.ndarray, eval_c: np.ndarray, threshold: float
                 ) -> list[tuple[int, int, float]]:
    """(training identity, evaluation person, cosine) for each training identity whose nearest evaluation
    person's centre is at least `threshold` close."""
    live = np.flatnonzero(train_counts > 0)
    if len(live) == 0 or len(eval_c) == 0:
        return []
    sims, nbrs = _search(eval_c, train_c[live], 1)
    return [(int(live[r]), int(nbrs[r, 0]), float(sims[r, 0])) for r in range(len(live)) if sims[r, 0] >= threshold]
