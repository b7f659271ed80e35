"""Template features by media pooling (Ranjan et al. 2017, §5.2, after TPE,
Sankaranarayanan et al. 2016; insightface `image2template_feature`).

`media`: the mean of a template's rows within each media (a still image, or all frames of one video),
then the mean of the media features, then L2 normalization. The mean across media equals insightface's
sum once normalized. `mean`: a plain mean over all rows (PFE `eval_ijb.py`), then L2 normalization.
Image features are raw (mirror-summed) by default, so their norm acts as a quality weight
(insightface `use_norm_score=True`); `normalize_images=True` L2-normalizes each row first. Optional row
weights (insightface `use_detector_score`: the face detector's score) scale each row before pooling.
Rows are grouped by sorting, so IJB-C's 469k faces in 23k templates pool in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facetrain.errors import FacetrainError
from facetrain.eval.metrics.pair_scoring import l2_normalize

__all__ = ["POOLINGS", "PooledTemplates", "pool_templates"]

POOLINGS = ("media", "mean")


@dataclass(frozen=True)
class PooledTemplates:
    ids: list[int]  # template ids, in first-seen order
    features: np.ndarray  # [T, D], L2-normalized
    norms: np.ndarray  # [T] norm of the pooled feature before the final normalization (quality proxy)


def _group_mean(values: np.ndarray, groups: np.ndarray, count: int) -> np.ndarray:
    """Mean of the rows of each group 0..count-1 (every group has a row): one sort, one reduceat."""
    order = np.argsort(groups, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(groups[order]) != 0])
    sums = np.add.reduceat(values[order], starts, axis=0)
    return sums / np.bincount(groups, minlength=count)[:, None]


def pool_templates(features: np.ndarray, template_ids: Sequence[int], media_ids: Sequence[int],
                   pooling: str = "media", normalize_images: bool = False,
                   weights: Sequence[float] | None = None) -> PooledTemplates:
    """Pool row features [R, D] into one unit vector per template.

    Args:
        features: one row per (template, face) entry of the protocol file.
        template_ids: the template of each row.
        media_ids: the media of each row (IJB-A `MEDIA_ID`: frames of a video share it).
        pooling: `media` or `mean` (POOLINGS).
        normalize_images: L2-normalize each row before pooling.
        weights: one factor per row applied before pooling (after `normalize_images`); None = all 1.

    Returns:
        the pooled templates.
    """
    if pooling not in POOLINGS:
        raise FacetrainError(f"pooling={pooling!r} is not one of {', '.join(POOLINGS)}")
    feats = np.array(features, dtype=np.float64)  # a copy: scaled in place below
    if normalize_images:
        feats = l2_normalize(feats)
    if weights is not None:
        feats *= np.asarray(weights, dtype=np.float64)[:, None]
    tids, mids = np.asarray(template_ids), np.asarray(media_ids)
    unique, first, template = np.unique(tids, return_index=True, return_inverse=True)
    rank = np.empty(len(unique), dtype=int)
    rank[np.argsort(first, kind="stable")] = np.arange(len(unique))  # sorted id -> first-seen position
    template = rank[template.reshape(-1)]
    if pooling == "mean":
        pooled = _group_mean(feats, template, len(unique))
    else:
        pairs, media = np.unique(np.stack([template, mids]), axis=1, return_inverse=True)
        per_media = _group_mean(feats, media.reshape(-1), pairs.shape[1])
        pooled = _group_mean(per_media, pairs[0], len(unique))
    norms = np.linalg.norm(pooled, axis=1)
    return PooledTemplates(tids[np.sort(first)].tolist(), l2_normalize(pooled), norms)
