"""Label checks in a model's embedding space: one person under two names, mislabeled images, evaluation overlap.

An identity's centre is the normalized mean of its images' normalized embeddings; faiss finds each centre's and
each image's nearest centres.

- One person under two names, and a training identity that is an evaluation person: the two sides' images are
  about as alike across as each side's are among themselves. The ratio of the mean cross cosine to the
  geometric mean of each side's own mean cosine is near 1 for one person and below it for two, whatever
  cosines the model gives a person, so it is compared among the near pairs rather than the centres' cosine
  (a tight and a spread-out identity differ in how close their centres can come). Its `auto` cut comes from the
  set itself: every identity of 4+ images split at random into two halves is one person under two names; the
  cut is the ratio that `merge_quantile` of those halves fall below.
- Mislabeled: an image closer to another identity's centre than to its own (computed without it) by an unusual
  margin. Most images are filed right, so `auto` is an outlier bound on that margin over the whole set: the
  median plus `z` robust standard deviations (1.4826 times the median absolute deviation; Hampel 1974; Rousseeuw
  and Croux 1993), which a minority of faults does not move.

A number instead of `auto` is used as it is.
"""

from __future__ import annotations

import faiss
import numpy as np

__all__ = ["centres", "chance_levels", "eval_matches", "impostor_ratios", "merged_identities", "mislabeled_images",
           "nearest_other", "outlier_cut", "own_fit", "photo_cuts", "split_half_ratios", "typical_within",
           "within_similarity"]


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


def nearest_other(feats: np.ndarray, labels: np.ndarray, ok: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Each image's cosine to the nearest of the unit centres `c` (`centres`) other than its own identity's (NaN:
    unreadable, or a set of one identity): how alike a photo is to the closest other person."""
    out = np.full(len(labels), np.nan, np.float32)
    if len(c) < 2 or not ok.any():
        return out
    idx = np.flatnonzero(ok)
    sims, nbrs = _search(c, _unit(feats[idx]), 2)
    out[idx] = np.where(nbrs[:, 0] == labels[idx], sims[:, 1], sims[:, 0])
    return out


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


def within_similarity(sums: np.ndarray, counts: np.ndarray, prior: float | None = None) -> np.ndarray:
    """Each identity's mean cosine over pairs of its (unit) images, from its summed features: (|s|^2 - n) /
    (n (n - 1)); NaN below two images. With a `prior` (a typical identity's), the mean over its pairs and
    one pair at the prior: a person with one or two photos gets a typical spread, not a chance one."""
    counts = np.asarray(counts, np.float64)
    sq = np.einsum("ij,ij->i", sums, sums)
    pairs = counts * (counts - 1.0) / 2
    mean = np.where(counts > 1, (sq - counts) / np.maximum(2 * pairs, 1), np.nan)
    return mean if prior is None else (pairs * np.nan_to_num(mean) + prior) / (pairs + 1)


def typical_within(sums: np.ndarray, counts: np.ndarray) -> float:
    """The median identity's `within_similarity` (1 when no identity has two images)."""
    w = within_similarity(sums, counts)
    return float(np.nanmedian(w)) if np.isfinite(w).any() else 1.0


def _ratio(sums_a, n_a, w_a, sums_b, n_b, w_b) -> np.ndarray:
    """Mean cosine between the two sides' images over the geometric mean of each side's own: about 1 when both
    are one person's photos, below it for two people, whatever cosines the model gives a person."""
    cross = np.einsum("ij,ij->i", sums_a, sums_b) / (n_a * n_b)
    return cross / np.sqrt(np.clip(w_a * w_b, 1e-6, None))


def split_half_ratios(feats: np.ndarray, labels: np.ndarray, ok: np.ndarray, prior: float,
                      splits: int | None = None, seed: int = 0) -> np.ndarray:
    """The ratio of `merged_identities` for each identity of 4+ readable images split at random (seeded) into
    two halves, `splits` times: what one person under two names looks like to this model on this set (the null of
    the cuts). One split per identity left the 1% cut to the luck of a few small identities' splits: over 16
    seeds it ranged 0.89-0.95 on one 500-identity tree, where 32 splits settle it within about 0.002. By default
    enough splits for about 16,000 values (32 at most): one split each is as many on 16,000 identities."""
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(ok)
    counts = np.bincount(labels[idx], minlength=int(labels.max()) + 1 if len(labels) else 0)
    idx = idx[counts[labels[idx]] >= 4]
    if len(idx) == 0:
        return np.zeros(0, np.float64)
    idx = idx[np.argsort(labels[idx], kind="stable")]
    lab = labels[idx]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    if splits is None:
        splits = int(np.clip(np.ceil(16_000 / len(starts)), 1, 32))
    n = np.diff(np.r_[starts, len(lab)]).astype(np.float64)
    half = n // 2
    bounds = np.stack([starts, starts + half.astype(np.int64)], 1).ravel()  # each identity's two halves
    group = np.repeat(np.arange(len(starts), dtype=np.float64), n.astype(np.int64))  # 0, 0, ..., 1, 1, ...
    x = feats[idx].astype(np.float64)
    out = []
    for _ in range(splits):
        order = np.argsort(group + rng.random(len(idx)))  # each identity's images, shuffled in place
        halves = np.add.reduceat(x[order], bounds, axis=0)
        a, b = halves[0::2], halves[1::2]
        out.append(_ratio(a, half, within_similarity(a, half, prior), b, n - half, within_similarity(b, n - half,
                                                                                                      prior)))
    return np.concatenate(out)


def _null_cut(threshold, null: np.ndarray, quantile: float) -> float:
    if str(threshold) != "auto":
        return float(threshold)
    return float(np.quantile(null, quantile)) if len(null) else float("inf")


def merged_identities(c: np.ndarray, sums: np.ndarray, counts: np.ndarray, threshold, null: np.ndarray,
                      quantile: float, prior: float, k: int = 10
                      ) -> tuple[list[tuple[int, int, float, float]], np.ndarray, float]:
    """((a, b, ratio, centres' cosine) with a < b for identity pairs among each other's `k` nearest centres
    whose ratio of cross to own image similarity reaches the cut, each identity's highest ratio, the cut:
    `threshold`, or with `auto` the `quantile` of `null` (`split_half_ratios`: the cut that so small a share of
    people split in two would fall below))."""
    live = np.flatnonzero(counts > 0)
    if len(live) < 2:
        return [], np.zeros(0, np.float32), float("inf")
    w = within_similarity(sums, counts, prior)
    sims, nbrs = _search(c[live], c[live], k + 1)
    other = (nbrs >= 0) & (nbrs != np.arange(len(live))[:, None])
    rows, cols = np.nonzero(other)
    a, b = live[rows], live[nbrs[rows, cols]]
    n = counts.astype(float)
    ratio = _ratio(sums[a], n[a], w[a], sums[b], n[b], w[b])
    best = np.full(len(c), -np.inf)
    np.maximum.at(best, a, ratio)
    cut = _null_cut(threshold, null, quantile)
    found = {}
    for i, j, r, s in zip(a, b, ratio, sims[rows, cols], strict=True):
        if r >= cut:
            found[tuple(sorted((int(i), int(j))))] = (float(r), float(s))
    return sorted((x, y, r, s) for (x, y), (r, s) in found.items()), best[live].astype(np.float32), cut


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


def impostor_ratios(c: np.ndarray, sums: np.ndarray, counts: np.ndarray, feats: np.ndarray, labels: np.ndarray,
                    ok: np.ndarray, prior: float, exclude=(), photos: int = 8, k: int = 10, limit: int = 2000,
                    draws: int = 4, seed: int = 0) -> np.ndarray:
    """[photos, S x draws]: for m = 1..photos, each of up to `limit` sampled identities' best ratio against m
    random photos of each of its `k` nearest other identities, in `draws` independent draws (a high quantile of
    one draw each moves with the luck of a few photos) (`exclude`: identities found to be one person with
    another, left out): what an evaluation person of m photos who is someone else scores by chance."""
    rng = np.random.default_rng(seed)
    drop = set(int(e) for e in exclude)
    live = np.array([i for i in np.flatnonzero(counts > 1) if i not in drop], np.int64)
    if len(live) < 2:
        return np.zeros((photos, 0))
    sample = np.sort(rng.choice(live, min(limit, len(live)), replace=False))
    idx = np.flatnonzero(ok)
    order = idx[np.argsort(labels[idx], kind="stable")]
    starts = np.searchsorted(labels[order], np.arange(len(counts) + 1))
    _, nbrs = _search(c[live], c[sample], k + 1)
    w = within_similarity(sums, counts, prior)
    out = np.full((photos, len(sample) * draws), -np.inf)
    for row, ident in enumerate(sample):
        for other in live[nbrs[row][nbrs[row] >= 0]]:
            if other == ident:
                continue
            for d in range(draws):
                picks = rng.permutation(order[starts[other]:starts[other + 1]])[:photos]
                picked = np.cumsum(feats[picks], 0)  # row m - 1: the sum of m random photos
                m = np.arange(1.0, len(picks) + 1)
                r = _ratio(np.broadcast_to(sums[ident], picked.shape), np.full(len(m), float(counts[ident])),
                           np.full(len(m), w[ident]), picked, m, within_similarity(picked, m, prior))
                col = row * draws + d
                out[:len(m), col] = np.maximum(out[:len(m), col], r)
    return out


def photo_cuts(threshold, null: np.ndarray, quantile: float, impostors: np.ndarray) -> np.ndarray:
    """The evaluation-overlap cut for a person of 1, 2, ... photos (the last for that many and more): `threshold`,
    or with `auto` the cut of `merged_identities`, raised where by chance someone else with that few photos would
    pass it for more than `quantile` of the identities (a single photo is weak evidence)."""
    photos = max(1, impostors.shape[0])
    if str(threshold) != "auto":
        return np.full(photos, float(threshold))
    base = _null_cut(threshold, null, quantile)
    if impostors.shape[1] == 0:
        return np.full(photos, base)
    return np.maximum(base, np.quantile(impostors, 1 - quantile, axis=1))


def chance_levels(impostors: np.ndarray, ratios: np.ndarray, photos: np.ndarray) -> np.ndarray:
    """Each match's share of `impostor_ratios` draws for its number of photos (the last row for that many and more)
    that reach its ratio: how often someone else would score as high, to rank findings by the evidence behind them
    (NaN without draws: a fixed `eval_threshold`)."""
    ratios = np.asarray(ratios, np.float64)
    if impostors.shape[1] == 0:
        return np.full(len(ratios), np.nan)
    m = np.clip(np.asarray(photos, np.int64), 1, len(impostors)) - 1
    return (impostors[m] >= ratios[:, None]).mean(1)


def eval_matches(train_c: np.ndarray, train_sums: np.ndarray, train_counts: np.ndarray, eval_c: np.ndarray,
                 eval_sums: np.ndarray, eval_counts: np.ndarray, cuts: np.ndarray, prior: float, k: int = 10
                 ) -> list[tuple[int, int, float, float]]:
    """(training identity, evaluation person, ratio, centres' cosine) for each pair, among each side's `k` nearest
    centres, whose ratio of `merged_identities` reaches the cut for the person's number of photos (`photo_cuts`)
    and that is each side's best such pair."""
    live = np.flatnonzero(train_counts > 0)
    if len(live) == 0 or len(eval_c) == 0:
        return []
    _, fwd = _search(eval_c, train_c[live], k)
    _, bwd = _search(train_c[live], eval_c, k)
    pairs = {(int(live[r]), int(p)) for r, row in enumerate(fwd) for p in row if p >= 0}
    pairs |= {(int(live[t]), p) for p, row in enumerate(bwd) for t in row if t >= 0}
    t, p = np.array(sorted(pairs)).T
    tw, ew = within_similarity(train_sums, train_counts, prior), within_similarity(eval_sums, eval_counts, prior)
    ratio = _ratio(train_sums[t], train_counts[t].astype(float), tw[t], eval_sums[p], eval_counts[p].astype(float),
                   ew[p])
    passing = ratio >= cuts[np.clip(eval_counts[p], 1, len(cuts)) - 1]
    best_t, best_p = {}, {}  # each side's best passing pair
    for i in np.argsort(-ratio, kind="stable"):
        if passing[i]:
            best_t.setdefault(t[i], i)
            best_p.setdefault(p[i], i)
    return [(int(t[i]), int(p[i]), float(ratio[i]), float(train_c[t[i]] @ eval_c[p[i]]))
            for _, i in sorted(best_t.items()) if best_p[p[i]] == i]
