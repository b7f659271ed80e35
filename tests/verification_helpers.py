"""An independent, brute-force LFW threshold rule for tests to check protocol numbers against (helpers, no tests)."""

from __future__ import annotations

import numpy as np


def threshold_rule_accuracy(scores: np.ndarray, same: np.ndarray, test: np.ndarray) -> float:
    """The `score > t` threshold best on the pairs outside `test` (candidates midway between their distinct scores
    and just outside them; the lowest on ties), applied to the `test` pairs: one fold of LFW's 10-fold accuracy."""
    s = np.unique(scores[~test])
    candidates = np.r_[s[0] - 1, (s[1:] + s[:-1]) / 2, s[-1] + 1]
    t = candidates[int(np.argmax([np.mean((scores[~test] > t) == same[~test]) for t in candidates]))]
    return float(np.mean((scores[test] > t) == same[test]))
