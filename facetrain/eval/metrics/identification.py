"""1:N identification: closed-set CMC (Rank-k) and open-set TPIR/DIR at FPIR (NIST; BLUFR `OpenSetROC.m`).

Scores are a [probes, gallery] matrix, higher = more similar; the gallery holds at most one entry per
subject (IJB-A: one template per subject; BLUFR: one image per class).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facetrain.errors import FacetrainError
from facetrain.eval.metrics.roc import matlab_round

__all__ = ["OpenSetPoint", "Probes", "cmc", "open_set", "split_probes"]


@dataclass(frozen=True)
class Probes:
    """Probes split into mated (subject in the gallery) and non-mated ones."""

    mate_score: np.ndarray  # [M] score against the mate, for mated probes
    mate_rank: np.ndarray  # [M] 1 + number of gallery entries scoring strictly higher than the mate
    nonmated_max: np.ndarray  # [U] best gallery score of each non-mated probe


def split_probes(scores: np.ndarray, probe_labels: np.ndarray, gallery_labels: np.ndarray) -> Probes:
    """Mate scores and count-based ranks of mated probes, max scores of non-mated ones.

    The rank counts gallery entries with a strictly higher score, so ties go to the probe's favour and
    the result does not depend on a sort's tie order (numpy's default argsort is not stable).
    """
    gallery_labels = np.asarray(gallery_labels)
    if len(np.unique(gallery_labels)) != len(gallery_labels):
        raise FacetrainError("the gallery holds a subject twice; open-set and CMC scoring need one entry per subject")
    column = {label: j for j, label in enumerate(gallery_labels.tolist())}
    mate = np.array([column.get(label, -1) for label in np.asarray(probe_labels).tolist()], dtype=int)
    mated = mate >= 0
    rows = np.flatnonzero(mated)
    mate_score = scores[rows, mate[mated]]
    mate_rank = 1 + np.sum(scores[rows] > mate_score[:, None], axis=1)
    nonmated_max = scores[~mated].max(axis=1) if (~mated).any() else np.zeros(0)
    return Probes(mate_score, mate_rank, nonmated_max)


def cmc(probes: Probes, ranks: list[int]) -> dict[int, float]:
    """Closed-set identification rate at each rank: the fraction of mated probes with mate rank <= k."""
    if len(probes.mate_rank) == 0:
        raise FacetrainError("no probe has its subject in the gallery; closed-set identification is undefined")
    return {k: float(np.mean(probes.mate_rank <= k)) for k in ranks}


@dataclass(frozen=True)
class OpenSetPoint:
    tpir: float  # mated probes found at rank <= R with score >= threshold (DIR in BLUFR)
    fpir: float  # non-mated probes whose best score reaches the threshold
    threshold: float


def open_set(probes: Probes, fpir: float, rank: int = 1) -> OpenSetPoint:
    """TPIR at a target FPIR: threshold = the k-th largest non-mated max score, k = round(FPIR * N_nonmated).

    When k = 0 the threshold is just above the largest non-mated score (no false alarm allowed).
    Both comparisons are inclusive (>=), as in BLUFR's OpenSetROC and PFE's DIR_FAR.
    """
    if len(probes.nonmated_max) == 0 or len(probes.mate_rank) == 0:
        raise FacetrainError("open-set identification needs both mated and non-mated probes")
    imp = np.sort(probes.nonmated_max)[::-1]
    k = matlab_round(fpir * len(imp))
    thr = float(imp[k - 1]) if k >= 1 else float(imp[0]) + 1e-8
    hit = (probes.mate_score >= thr) & (probes.mate_rank <= rank)
    return OpenSetPoint(float(hit.mean()), float(np.mean(imp >= thr)), thr)
