"""calibration.json from a protocol's scored pairs: thresholds at FAR 1e-1 ... 1e-6, with the set and checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from facetrain.eval.metrics.calibration import CALIBRATION_FARS, DECISION_RULE, far_thresholds
from facetrain.run.calibration_file import update_calibration

__all__ = ["calibration_record", "write_calibration"]


def calibration_record(protocol: str, set_name: str, same: np.ndarray, scores: np.ndarray, *, pairs_of: str,
                       checkpoint: Path | None, iteration: int, mirror: str, embedding: str = "backbone",
                       features_file: str | None = None, data: str | None = None) -> dict:
    """One set's entry of calibration.json.

    Args:
        protocol: the protocol that scored the pairs (lfw, bin, ijbc, ..., or `validation`).
        set_name: the set's key (lfw, bin/cfp_fp, ijbc, ...).
        same, scores: the labels and cosine scores of all the set's pairs.
        pairs_of: what a pair compares: `image`, `template` (IJB media-pooled) or `video` (mean frame-pair cosine).
        checkpoint, iteration: the model the features came from (checkpoint None for a features file).
        mirror, embedding: how the images were embedded (verify embeds its photos the same way).
        features_file, data: where the features / the set's images came from.
    """
    return {
        "protocol": protocol, "set": set_name, "score": "cosine", "pairs_of": pairs_of, "decision": DECISION_RULE,
        "mirror": str(mirror), "embedding": str(embedding),
        "checkpoint": {"path": None if checkpoint is None else str(checkpoint), "iteration": int(iteration)},
        "features_file": features_file, "data": data,
        "genuine_pairs": int(np.sum(same)), "impostor_pairs": int(np.sum(~np.asarray(same, dtype=bool))),
        "thresholds": far_thresholds(same, scores, CALIBRATION_FARS),
    }


def write_calibration(out_dirs: list[Path], records: Mapping[str, dict]) -> list[Path]:
    """Merge `records` into calibration.json of each folder (the eval run, the model's run); the written files."""
    return [update_calibration(d, dict(records)) for d in out_dirs]
