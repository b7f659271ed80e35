"""Template features by media pooling (l2-softmax.md §6 after TPE; insightface `image2template_feature`).

`media`: the mean of a template's rows within each media (a still image, or all frames of one video),
then the mean of the media features, then L2 normalization. The mean across media equals insightface's
sum once normalized. `mean`: a plain mean over all rows (PFE `eval_ijb.py`), then L2 normalization.
Image features are raw (mirror-summed) by default, so their norm acts as a quality weight
(insightface `use_norm_score=True`); `normalize_images=True` L2-normalizes each row first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facetrain.errors import FacetrainError
from facetrain.eval.pair_scoring import l2_normalize

__all__ = ["POOLINGS", "PooledTemplates", "pool_templates"]

POOLINGS = ("media", "mean")


@dataclass(frozen=True)
class PooledTemplates:
    ids: list[int]  # template ids, in first-seen order
    features: np.ndarray  # [T, D], L2-normalized
    norms: np.ndarray  # [T] norm of the pooled feature before the final normalization (quality proxy)


def pool_templates(features: np.ndarray, template_ids: Sequence[int], media_ids: Sequence[int],
                   pooling: str = "media", normalize_images: bool = False) -> PooledTemplates:
    """Pool row features [R, D] into one unit vector per template.

    Args:
        features: one row per (template, face) entry of the protocol file.
        template_ids: the template of each row.
        media_ids: the media of each row (IJB-A `MEDIA_ID`: frames of a video share it).
        pooling: `media` or `mean` (POOLINGS).
        normalize_images: L2-normalize each row before pooling.

    Returns:
        the pooled templates.
    """
    if pooling not in POOLINGS:
        raise FacetrainError(f"pooling={pooling!r} is not one of {', '.join(POOLINGS)}")
    feats = l2_normalize(features) if normalize_images else np.asarray(features, dtype=np.float64)
    tids, mids = np.asarray(template_ids), np.asarray(media_ids)
    order = list(dict.fromkeys(tids.tolist()))
    pooled = np.zeros((len(order), feats.shape[1]))
    for t, tid in enumerate(order):
        rows = tids == tid
        if pooling == "mean":
            pooled[t] = feats[rows].mean(axis=0)
            continue
        media = mids[rows]
        pooled[t] = np.mean([feats[rows][media == m].mean(axis=0) for m in dict.fromkeys(media.tolist())], axis=0)
    norms = np.linalg.norm(pooled, axis=1)
    return PooledTemplates(order, l2_normalize(pooled), norms)
