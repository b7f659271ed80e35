"""`facetrain verify`: photos -> aligned crops -> embeddings -> cosine scores -> decisions at a calibrated FAR.

Photos are embedded the way the calibration set was (the model's own input size, fit and channels; the
calibration's mirror mode), so a score means what the threshold measured.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from facetrain.atomic import atomic_write
from facetrain.config import abs_path, check_count
from facetrain.errors import FacetrainError
from facetrain.eval.features.embedder import embed_crops
from facetrain.run.device import pick_device
from facetrain.verify.model import VerifyModel, open_model
from facetrain.verify.pairs import gallery_photos, pairs_of_inputs
from facetrain.verify.photos import Detector, default_detector, list_photos, photo_crops
from facetrain.verify.threshold import Threshold, find_threshold

__all__ = ["PhotoEmbedder", "top_identities", "verify_from_config"]

log = logging.getLogger(__name__)


class PhotoEmbedder:
    """Unit-length embeddings of photos, each photo embedded once."""

    def __init__(self, model: VerifyModel, mirror: str, device, detector: Detector | None, aligned: bool,
                 batch_size: int = 64):
        self.model, self.mirror, self.device, self.detector = model, mirror, device, detector
        self.aligned, self.batch_size = aligned, batch_size

    def __call__(self, photos: Sequence[Path]) -> dict[Path, np.ndarray]:
        unique = list(dict.fromkeys(photos))
        pre = self.model.trained.preprocessing
        crops = photo_crops(unique, pre.input_size, aligned=self.aligned, detector=self.detector, fit=pre.fit)
        feats = embed_crops(self.model.trained.embedder, crops, self.device, self.mirror, self.batch_size,
                            pre.channels).astype(np.float64)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        if not np.isfinite(feats).all() or (norms == 0).any():
            raise FacetrainError(f"the model {self.model.path} gives non-finite or zero embeddings; it has diverged "
                                 "or collapsed, use another checkpoint")
        return dict(zip(unique, feats / norms, strict=True))


def _decision(score: float, threshold: Threshold | None) -> str:
    if threshold is None:
        return ""
    return "same" if score > threshold.value else "different"


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(header)
            out.writerows(rows)

    return atomic_write(path, write)


def _score_pairs(cfg: DictConfig, embed: PhotoEmbedder, threshold: Threshold | None,
                 pairs: list[tuple[Path, Path]], single: bool) -> list[list]:
    feats = embed([p for pair in pairs for p in pair])
    scores = [float(feats[a] @ feats[b]) for a, b in pairs]
    if single:
        (a, b), score = pairs[0], scores[0]
        verdict = {"same": "same person", "different": "different people", "": "no decision"}[_decision(score, threshold)]
        print(f"{a.name} vs {b.name}: cosine {score:.4f} -> {verdict}")
        print(threshold.describe() if threshold else "calibration=none: no threshold, scores only")
    rows = [[str(a), str(b), f"{s:.6f}", _decision(s, threshold)] for (a, b), s in zip(pairs, scores, strict=True)]
    if not single or cfg.out:
        out = _write_csv(_out(cfg, "scores.csv"), ["photo_a", "photo_b", "cosine", "decision"], rows)
        same = sum(r[3] == "same" for r in rows)
        print(f"{len(rows)} pairs scored" + (f", {same} same person at the {threshold.describe()}" if threshold
                                             else " (calibration=none: no decisions)"))
        print(f"scores: {out}")
    return rows


def top_identities(probes: np.ndarray, gallery: np.ndarray, names: Sequence[str], k: int
                   ) -> tuple[list[list[str]], np.ndarray]:
    """Each probe's k best identities (an identity's score: its best photo's cosine) and their scores [P, k].

    `gallery` rows are grouped by identity (`names` in runs), unit length like `probes`.
    """
    names = list(names)
    starts = np.flatnonzero([i == 0 or names[i] != names[i - 1] for i in range(len(names))])
    identities = [names[s] for s in starts]
    k = min(int(k), len(identities))
    best, scores = [], []
    for lo in range(0, len(probes), 1024):  # [1024, G] similarities at a time
        per_identity = np.maximum.reduceat(probes[lo:lo + 1024] @ gallery.T, starts, axis=1)
        top = np.argsort(-per_identity, axis=1, kind="stable")[:, :k]
        best += [[identities[j] for j in row] for row in top]
        scores.append(np.take_along_axis(per_identity, top, axis=1))
    return best, np.concatenate(scores)


def _gallery_inputs(cfg: DictConfig) -> tuple[list[Path], list[Path], list[str]]:
    if not cfg.inputs:
        raise FacetrainError("gallery= needs probe photos: facetrain verify probe.jpg gallery=DIR (or a folder)")
    probes = [p for spec in cfg.inputs for p in list_photos(str(spec), "probe")]
    return probes, *gallery_photos(str(cfg.gallery))


def _search_gallery(cfg: DictConfig, embed: PhotoEmbedder, threshold: Threshold | None, probes: list[Path],
                    photos: list[Path], names: list[str]) -> list[list]:
    feats = embed(probes + photos)
    best, scores = top_identities(np.stack([feats[p] for p in probes]), np.stack([feats[p] for p in photos]),
                                  names, int(cfg.top_k))
    rows = []
    for probe, ids, row in zip(probes, best, scores, strict=True):
        rows += [[str(probe), rank + 1, name, f"{s:.6f}", _decision(float(s), threshold)]
                 for rank, (name, s) in enumerate(zip(ids, row, strict=True))]
        if len(probes) <= 20:
            ranked = "  ".join(f"{r + 1}. {n} {s:.4f}" + (f" ({_decision(float(s), threshold)})" if threshold else "")
                               for r, (n, s) in enumerate(zip(ids, row, strict=True)))
            print(f"{probe.name}: {ranked}")
    out = _write_csv(_out(cfg, "gallery.csv"), ["probe", "rank", "identity", "cosine", "decision"], rows)
    print(f"{len(probes)} probe(s) against {len(set(names))} identities ({len(photos)} photos); "
          + (threshold.describe() if threshold else "calibration=none: no decisions"))
    print(f"ranking: {out}")
    return rows


def _out(cfg: DictConfig, name: str) -> Path:
    return abs_path(cfg.out) if cfg.out else abs_path(cfg.run_dir) / name


def _check_agreement(model: VerifyModel, threshold: Threshold, embedding: str) -> None:
    """One line when the calibration was measured on other weights or another embedding than these."""
    record = threshold.record
    calibrated = (record.get("checkpoint") or {}).get("iteration")
    if model.card is None and calibrated is not None and model.trained.iteration and calibrated != model.trained.iteration:
        print(f"note: the threshold was calibrated at iteration {calibrated}, the model is at iteration "
              f"{model.trained.iteration}; `facetrain eval lfw model={model.path}` recalibrates it")
    if record.get("embedding", "backbone") != embedding:
        print(f"note: the calibration used embedding={record.get('embedding')}, this run embedding={embedding}")
    if record.get("pairs_of", "image") != "image":
        print(f"note: set {threshold.set_name} calibrated {record['pairs_of']} pairs, not single photos; "
              "calibration_set=lfw (or another image-pair set) fits photos better")


def _check_settings(cfg: DictConfig) -> None:
    far = cfg.far
    if isinstance(far, bool) or not isinstance(far, int | float) or not 0 < far < 1:
        raise FacetrainError(f"far={far!r} must be a false accept rate between 0 and 1, e.g. far=0.001")
    check_count("batch_size", cfg.batch_size, 1, "photos per embedding batch")
    check_count("top_k", cfg.top_k, 1, "identities listed per probe")
    if cfg.out and abs_path(cfg.out).is_dir():
        raise FacetrainError(f"out={abs_path(cfg.out)} is a folder; give the CSV file to write")


def verify_from_config(cfg: DictConfig) -> list[list]:
    """The `facetrain verify` command; returns the rows it wrote or printed.

    Args:
        cfg: the composed verify.yaml (inputs, model, far, calibration, aligned, gallery, ...).
    """
    _check_settings(cfg)
    embedding = str(cfg.embedding)
    # the inputs are listed first: a typo in a photo's name costs no model loading
    work = _gallery_inputs(cfg) if cfg.gallery else pairs_of_inputs([str(x) for x in cfg.inputs])
    model = open_model(str(cfg.model), cfg.paths.runs, embedding)
    threshold = find_threshold(model, cfg.calibration, float(cfg.far), cfg.calibration_set)
    if threshold is not None:
        _check_agreement(model, threshold, embedding)
    mirror = str(cfg.mirror or (threshold.record.get("mirror") if threshold else None) or "sum")
    device = pick_device(str(cfg.device))
    detector = None if cfg.aligned else default_detector(str(cfg.pick), str(device))
    embed = PhotoEmbedder(model, mirror, device, detector, bool(cfg.aligned), int(cfg.batch_size))
    if cfg.gallery:
        return _search_gallery(cfg, embed, threshold, *work)
    return _score_pairs(cfg, embed, threshold, *work)
