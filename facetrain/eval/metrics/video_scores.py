"""Video-pair scores for YouTube Faces: mean frame-pair cosine, and NormFace's score histogram + HIK-SVM (§5.3).

The mean of all frame-pair cosines equals the dot product of the two videos' means of normalized frame
features (not the cosine of the mean features, the other common choice).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.svm import SVC

from facetrain.eval.metrics.pair_scoring import l2_normalize

__all__ = ["HIST_EDGES", "hik_kernel", "hik_svm_accuracy", "pair_histograms", "video_mean_scores"]

HIST_EDGES = np.linspace(-1.0, 1.0, 101)  # histcounts(S, -1:0.02:1): 100 bins, the last one closed


def _centred(frames: np.ndarray, mu: np.ndarray | None) -> np.ndarray:
    return l2_normalize(frames.astype(np.float64) - (0 if mu is None else mu))


def video_mean_scores(videos: dict[str, np.ndarray], left: Sequence[str], right: Sequence[str],
                      mu: np.ndarray | None = None) -> np.ndarray:
    """Mean cosine over all frame pairs of each video pair (frames centred by `mu` first when given)."""
    means = {v: _centred(f, mu).mean(axis=0) for v, f in videos.items()}
    return np.array([means[a] @ means[b] for a, b in zip(left, right, strict=True)])


def pair_histograms(videos: dict[str, np.ndarray], left: Sequence[str], right: Sequence[str],
                    mu: np.ndarray | None = None) -> np.ndarray:
    """[P, 100] histograms of the frame-pair cosine matrix of each pair, as probabilities (sum to 1)."""
    unit = {v: _centred(f, mu) for v, f in videos.items()}
    hists = np.empty((len(left), len(HIST_EDGES) - 1))
    for p, (a, b) in enumerate(zip(left, right, strict=True)):
        sim = np.clip(unit[a] @ unit[b].T, -1.0, 1.0)  # rounding can step past +-1; histcounts would drop it
        hists[p] = np.histogram(sim, HIST_EDGES)[0] / sim.size
    return hists


def hik_kernel(a: np.ndarray, b: np.ndarray, block: int = 256) -> np.ndarray:
    """Histogram intersection kernel K[i, j] = sum_k min(a[i, k], b[j, k]), computed in row blocks."""
    out = np.empty((len(a), len(b)))
    for i in range(0, len(a), block):
        out[i:i + block] = np.minimum(a[i:i + block, None, :], b[None, :, :]).sum(axis=2)
    return out


def hik_svm_accuracy(hists: np.ndarray, same: np.ndarray, fold: np.ndarray, c: float = 1.0,
                     kernel: np.ndarray | None = None) -> np.ndarray:
    """Accuracy of each split for an SVM with the HIK kernel (SVC, precomputed) trained on the other splits.

    Args:
        hists: [P, bins] pair histograms.
        same: bool [P] labels.
        fold: [P] split of each pair.
        c: the SVM's C (libsvm's default 1).
        kernel: the full [P, P] kernel, when already computed (it is the same for every split).
    """
    kernel = hik_kernel(hists, hists) if kernel is None else kernel
    accs = []
    for f in np.unique(fold):
        test = fold == f
        svm = SVC(kernel="precomputed", C=c).fit(kernel[np.ix_(~test, ~test)], same[~test])
        accs.append(np.mean(svm.predict(kernel[np.ix_(test, ~test)]) == same[test]))
    return np.array(accs)
