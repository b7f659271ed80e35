"""Verification ROC numbers: AUC, EER and TAR at a target FAR, with each published read-off rule.

Read-off rules (docs/protocols.md, "TAR at a FAR"):
- `exact_k` (BLUFR `EvalROC.m`, PFE): sort impostor scores in descending order, k = round(FAR * N_imp)
  (MATLAB rounding, half away from zero), threshold = the k-th largest impostor score, TAR = mean(genuine >= thr).
- `floor`: the highest TPR of an operating point whose FPR <= FAR (never exceeds the target).
- `interp`: linear interpolation of TPR at FAR between the two operating points around it.
- `nearest` (insightface `eval_ijbc.py`): the ROC point (sklearn `roc_curve`, default
  `drop_intermediate=True`) whose FPR is nearest to the target. insightface reverses the curve
  (`np.flipud`) before taking the first minimum, so a tie goes to the LAST such point in roc_curve order
  (the larger FPR and TPR; on a flat stretch, the same TPR at the lower threshold).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from facetrain.errors import FacetrainError

__all__ = ["FAR_READOFFS", "OperatingPoint", "check_fars", "eer", "exact_k_threshold", "matlab_round", "roc_auc",
           "tar_at_far"]

FAR_READOFFS = ("exact_k", "floor", "interp", "nearest")


@dataclass(frozen=True)
class OperatingPoint:
    tar: float  # true accept rate (TPR) at the chosen point
    far: float  # the false accept rate actually reached there
    threshold: float  # score threshold (accept iff score >= threshold); NaN for `interp`


def check_fars(fars, key: str = "protocol.fars") -> list[float]:
    """`fars` as floats when it lists rates in (0, 1]; else one line naming `key` (a list set on the command line
    reaches a protocol as any type, and the tables format each FAR as a number before `tar_at_far` checks it)."""
    listed = isinstance(fars, Sequence) and not isinstance(fars, str)
    if not listed or not all(isinstance(f, int | float) and not isinstance(f, bool) and 0 < f <= 1 for f in fars):
        shown = f"[{','.join(map(str, fars))}]" if listed else repr(fars)
        raise FacetrainError(f"{key}={shown} must be numbers in (0, 1] (the false accept rates TAR is read at), "
                             f"e.g. {key}=[0.001,0.01]")
    return [float(f) for f in fars]


def matlab_round(x: float) -> int:
    """Round half away from zero, as MATLAB's `round` (Python's `round` rounds half to even)."""
    return int(np.floor(abs(x) + 0.5) * np.sign(x))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn)."""
    return float(roc_auc_score(labels, scores))


def eer(labels: np.ndarray, scores: np.ndarray) -> float:
    """Equal error rate: where FPR = 1 - TPR on the full ROC, linearly interpolated between its points."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1 - tpr
    diff = fpr - fnr  # rises from -1 (accept nothing) to +1 (accept everything)
    i = int(np.argmax(diff >= 0))
    if i == 0 or diff[i] == 0:
        return float(fpr[i])
    # the crossing lies on the segment between points i-1 and i
    t = -diff[i - 1] / (diff[i] - diff[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def exact_k_threshold(impostors_desc: np.ndarray, far: float, genuine: np.ndarray | None = None,
                      zero_rule: str = "blufr") -> float:
    """The exact-k threshold from impostor scores sorted in descending order.

    Args:
        impostors_desc: impostor scores, largest first (only the first k are needed).
        far: the target false accept rate.
        genuine: genuine scores; needed by BLUFR's k = 0 rule.
        zero_rule: when k = round(far * N) is 0, `blufr` takes the midpoint between the top impostor and
            the lowest genuine score above it (or top + eps if none); `pfe` takes top + 1e-8.

    Returns:
        the threshold; accept iff score >= threshold.
    """
    k = matlab_round(far * len(impostors_desc))
    if k >= 1:
        return float(impostors_desc[k - 1])
    top = float(impostors_desc[0])
    if zero_rule == "pfe" or genuine is None:
        return top + 1e-8
    above = genuine[genuine > top]
    return (top + float(above.min())) / 2 if above.size else top + float(np.finfo(np.float32).eps)


def _exact_k(labels: np.ndarray, scores: np.ndarray, far: float) -> OperatingPoint:
    genuine, impostors = scores[labels], np.sort(scores[~labels])[::-1]
    thr = exact_k_threshold(impostors, far, genuine)
    return OperatingPoint(float(np.mean(genuine >= thr)), float(np.mean(impostors >= thr)), thr)


def _nearest(labels: np.ndarray, scores: np.ndarray, far: float) -> OperatingPoint:
    fpr, tpr, thr = roc_curve(labels, scores)  # insightface keeps sklearn's default drop_intermediate=True
    gap = np.abs(fpr - far)
    i = len(gap) - 1 - int(np.argmin(gap[::-1]))  # the first minimum of the flipped curve, as eval_ijbc.py
    return OperatingPoint(float(tpr[i]), float(fpr[i]), float(thr[i]))


def _floor_or_interp(labels: np.ndarray, scores: np.ndarray, far: float, interp: bool) -> OperatingPoint:
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    i = int(np.flatnonzero(fpr <= far)[-1])  # fpr[0] == 0, so there is always one
    if not interp or i + 1 == len(fpr) or fpr[i] == far:
        return OperatingPoint(float(tpr[i]), float(fpr[i]), float(thr[i]))
    t = (far - fpr[i]) / (fpr[i + 1] - fpr[i])
    return OperatingPoint(float(tpr[i] + t * (tpr[i + 1] - tpr[i])), float(far), float("nan"))


def tar_at_far(labels: np.ndarray, scores: np.ndarray, far: float, method: str = "exact_k") -> OperatingPoint:
    """TAR at a target FAR by one of FAR_READOFFS (see the module docstring).

    Args:
        labels: bool [P], True for genuine (same identity) pairs.
        scores: float [P], higher = more similar.
        far: target false accept rate in (0, 1].
        method: one of FAR_READOFFS.

    Returns:
        the operating point (TAR, the FAR reached, threshold).
    """
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.all() or not labels.any():
        raise FacetrainError("TAR@FAR needs both genuine and impostor pairs; the protocol left only one kind")
    if not 0 < far <= 1:  # FAR 2 read off TAR 1.0 as if it were a result
        raise FacetrainError(f"a FAR of {far:g} is not a rate; give protocol.fars in (0, 1], e.g. [0.001,0.01]")
    if method == "exact_k":
        return _exact_k(labels, scores, far)
    if method == "nearest":
        return _nearest(labels, scores, far)
    if method in ("floor", "interp"):
        return _floor_or_interp(labels, scores, far, interp=method == "interp")
    raise FacetrainError(f"far_readoff={method!r} is not one of {', '.join(FAR_READOFFS)}")
