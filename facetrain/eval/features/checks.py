"""check_features: refuse features no protocol can score (NaN/inf, all zero, all alike); warn about zero rows.

Pairs are scored on L2-normalized rows, so rows that differ only in scale score exactly like equal rows:
a collapsed model would be reported at chance level (50% on LFW) without a word, and a NaN row would
stop scikit-learn with a traceback. Both features files and freshly embedded features pass here.
"""

from __future__ import annotations

import logging

import numpy as np

from facetrain.errors import FacetrainError
from facetrain.eval.features.file import Features

__all__ = ["check_features"]

log = logging.getLogger(__name__)

ZERO_NORM = 1e-12  # below this a row cannot be normalized (pair_scoring's l2_normalize floor)
SAME_DIRECTION = 1 - 1e-5  # cosine above which two rows count as one direction (float32 noise is ~1e-7)


def check_features(features: Features, source: str, fix: str) -> None:
    """Raise a one-sentence FacetrainError when `features` cannot give meaningful scores; log zero-norm rows.

    Args:
        features: the rows the protocol will score, with their paths.
        source: what the rows came from, to start the message ("features file x.npz").
        fix: what the user should do about it, to end the message.
    """
    x, paths = features.features, features.paths
    n = len(x)
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad):
        raise FacetrainError(f"{source} has NaN or inf in {len(bad)} of the {n} rows the protocol uses "
                             f"(first: {paths[bad[0]]}); {fix}")
    norms = np.linalg.norm(x, axis=1)
    nonzero = np.flatnonzero(norms >= ZERO_NORM)
    if n and not len(nonzero):
        raise FacetrainError(f"{source}: all {n} rows the protocol uses are zero vectors; {fix}")
    zero = n - len(nonzero)
    if n > 1 and _one_direction(x[nonzero], norms[nonzero]):
        raise FacetrainError(f"{source}: all {n} rows the protocol uses are identical up to scale"
                             f"{f' or zero ({zero} rows)' if zero else ''}, so every pair would get the same score; "
                             f"{fix}")
    if zero:
        first = paths[int(np.flatnonzero(norms < ZERO_NORM)[0])]
        log.warning("%s: %d of the %d rows the protocol uses are zero vectors (first: %s); their pairs score 0",
                    source, zero, n, first)


def _one_direction(rows: np.ndarray, norms: np.ndarray) -> bool:
    """Whether every row points where the first does (a matrix-vector product: no copy of the rows)."""
    with np.errstate(all="ignore"):  # rows near the float32 limit overflow to inf: not one direction, no warning
        cosines = (rows @ rows[0]) / (norms * norms[0])
    return bool(cosines.min() >= SAME_DIRECTION)
