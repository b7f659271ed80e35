"""Score thresholds calibrated to a false accept rate: what a deployed model compares a cosine score with.

For a target FAR f over N impostor pairs, at most k = floor(f N) impostors may be accepted. The threshold is
the (k+1)-th largest impostor score and a pair is the same person when its score is strictly above it: the
lowest threshold whose empirical FAR is <= f (any lower one accepts k+1 impostors). With fewer than 1/f
impostor pairs (k = 0) the set cannot tell FAR f from 0: the FAR is marked unresolved, its threshold left
empty, never extrapolated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facetrain.errors import FacetrainError

__all__ = ["CALIBRATION_FARS", "DECISION_RULE", "far_thresholds", "far_thresholds_from_top", "top_needed"]

CALIBRATION_FARS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
DECISION_RULE = "same person when score > threshold"


def _allowed_false_accepts(far: float, impostors: int) -> int:
    return int(np.floor(far * impostors + 1e-9))  # 1e-9: f N that is an integer in exact arithmetic stays one


def far_thresholds(same: np.ndarray, scores: np.ndarray, fars: Sequence[float] = CALIBRATION_FARS) -> list[dict]:
    """One entry per target FAR: threshold, TAR there, the FAR reached, and the impostor pairs behind it.

    Args:
        same: bool [P], True for genuine (same-identity) pairs.
        scores: float [P] scores (higher = more alike).
        fars: target false accept rates in (0, 1).

    Returns:
        dicts with `far`, `resolved`, `threshold` (None when unresolved), `tar` (None without genuine pairs or
        when unresolved), `false_accepts`, `far_reached`, `impostor_pairs`, `genuine_pairs`, and for an
        unresolved FAR the `reason`.
    """
    same, scores = np.asarray(same, dtype=bool), np.asarray(scores, dtype=np.float64)
    if same.shape != scores.shape or same.ndim != 1:
        raise ValueError(f"labels {same.shape} and scores {scores.shape} must be two vectors of one length")
    if not np.isfinite(scores).all():
        raise FacetrainError("calibration needs finite scores; the model's features hold NaN or inf")
    return far_thresholds_from_top(scores[same], np.sort(scores[~same])[::-1], int((~same).sum()), fars)


def top_needed(impostors: int, fars: Sequence[float] = CALIBRATION_FARS) -> int:
    """How many of the largest impostor scores `far_thresholds_from_top` reads for `fars` (k + 1 at the largest FAR)."""
    return min(impostors, _allowed_false_accepts(max(fars), impostors) + 1)


def far_thresholds_from_top(genuine: np.ndarray, top: np.ndarray, impostors: int,
                            fars: Sequence[float] = CALIBRATION_FARS) -> list[dict]:
    """`far_thresholds` from the genuine scores and only the largest impostor scores (all-pairs sets like BLUFR).

    Args:
        genuine: float [G] genuine scores.
        top: the largest impostor scores in descending order, at least `top_needed(impostors, fars)` of them.
        impostors: how many impostor pairs the set has in all.
        fars: target false accept rates in (0, 1).
    """
    genuine, top = np.asarray(genuine, dtype=np.float64), np.asarray(top, dtype=np.float64)
    if not (np.isfinite(genuine).all() and np.isfinite(top).all()):
        raise FacetrainError("calibration needs finite scores; the model's features hold NaN or inf")
    if len(top) < top_needed(impostors, fars) or np.any(np.diff(top) > 0):
        raise ValueError(f"need the {top_needed(impostors, fars)} largest impostor scores in descending order")
    out = []
    for far in fars:
        far = float(far)
        if not 0 < far < 1:
            raise FacetrainError(f"FAR {far:g} is not in (0, 1)")
        k = _allowed_false_accepts(far, impostors)
        entry = {"far": far, "impostor_pairs": impostors, "genuine_pairs": len(genuine)}
        if k < 1 or k >= impostors:
            need = int(np.ceil(1 / far - 1e-9))
            reason = (f"needs >= {need} impostor pairs (1/FAR), the set has {impostors}" if k < 1 else
                      "every impostor pair would be accepted")
            out.append(entry | {"resolved": False, "threshold": None, "tar": None, "false_accepts": None,
                                "far_reached": None, "reason": reason})
            continue
        threshold = float(top[k])
        false_accepts = int((top[:k + 1] > threshold).sum())  # every impostor above top[k] is among top[:k]
        tar = float((genuine > threshold).mean()) if len(genuine) else None
        out.append(entry | {"resolved": True, "threshold": threshold, "tar": tar, "false_accepts": false_accepts,
                            "far_reached": false_accepts / impostors})
    return out
