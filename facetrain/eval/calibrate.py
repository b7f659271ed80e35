"""calibration.json from a protocol's scored pairs: thresholds at FAR 1e-1 ... 1e-6, with the set and checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facetrain.eval.metrics.calibration import CALIBRATION_FARS, DECISION_RULE, far_thresholds
from facetrain.run.calibration_file import update_calibration

__all__ = ["Calibrated", "ScoredPairs", "calibration_record", "write_calibration"]


@dataclass(frozen=True)
class ScoredPairs:
    """All of a set's pairs to calibrate on, and how they were gathered (e.g. pooled over splits)."""

    same: np.ndarray
    scores: np.ndarray
    extra: Mapping[str, object] = field(default_factory=dict)  # fields added to the record


@dataclass(frozen=True)
class Calibrated:
    """Thresholds a protocol read off itself (BLUFR: trial-wise over all pairs), with how it did."""

    thresholds: list[dict]
    genuine_pairs: int
    impostor_pairs: int
    extra: Mapping[str, object] = field(default_factory=dict)


def calibration_record(protocol: str, set_name: str, same: np.ndarray | None, scores: np.ndarray | None, *,
                       pairs_of: str, checkpoint: Path | None, iteration: int, mirror: str,
                       embedding: str = "backbone", features_file: str | None = None, data: str | None = None,
                       calibrated: Calibrated | None = None, extra: Mapping[str, object] | None = None) -> dict:
    """One set's entry of calibration.json.

    Args:
        protocol: the protocol that scored the pairs (lfw, bin, ijbc, ..., or `validation`).
        set_name: the set's key (lfw, bin/cfp_fp, ijbc, ...).
        same, scores: the labels and cosine scores of all the set's pairs.
        pairs_of: what a pair compares: `image`, `template` (IJB media-pooled) or `video` (mean frame-pair cosine).
        checkpoint, iteration: the model the features came from (checkpoint None for a features file).
        mirror, embedding: how the images were embedded (verify embeds its photos the same way).
        features_file, data: where the features / the set's images came from.
        calibrated: thresholds read off elsewhere (then same and scores are None).
        extra: fields added to the record, e.g. how splits or trials were combined.
    """
    if calibrated is not None:
        counts = {"genuine_pairs": calibrated.genuine_pairs, "impostor_pairs": calibrated.impostor_pairs,
                  "thresholds": calibrated.thresholds}
        extra = {**calibrated.extra, **(extra or {})}
    else:
        counts = {"genuine_pairs": int(np.sum(same)), "impostor_pairs": int(np.sum(~np.asarray(same, dtype=bool))),
                  "thresholds": far_thresholds(same, scores, CALIBRATION_FARS)}
    return {
        "protocol": protocol, "set": set_name, "score": "cosine", "pairs_of": pairs_of, "decision": DECISION_RULE,
        "mirror": str(mirror), "embedding": str(embedding),
        "checkpoint": {"path": None if checkpoint is None else str(checkpoint), "iteration": int(iteration)},
        "features_file": features_file, "data": data, **counts, **(extra or {}),
    }


def write_calibration(out_dirs: list[Path], records: Mapping[str, dict]) -> list[Path]:
    """Merge `records` into calibration.json of each folder (the eval run, the model's run); the written files."""
    return [update_calibration(d, dict(records)) for d in out_dirs]
