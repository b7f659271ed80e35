"""Features for a protocol's images: from a features file, or embedded with a model (through the cache).

Missing images (or unusable face boxes) stop the evaluation with the protocol file and line that named
them; with `allow_missing=true` they are dropped, counted, and the protocol drops what depends on them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from facetrain.config import abs_path
from facetrain.errors import FacetrainError
from facetrain.eval.features.cache import cache_file, cached_features, file_fingerprint
from facetrain.eval.features.checks import check_features
from facetrain.eval.features.embedder import embed_images
from facetrain.eval.features.file import Features, load_features, save_features
from facetrain.eval.metrics.roc import check_fars
from facetrain.models.trained_run import load_embedder
from facetrain.run.checkpoint import resolve_checkpoint, run_of_checkpoint
from facetrain.run.device import pick_device

__all__ = ["ImageSet", "ProtocolFeatures", "gather_features"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageSet:
    """The images a protocol needs, by feature name (a path relative to the evaluation root)."""

    root: Path
    keys: list[str]
    files: list[str] | None = None  # file of each key when it differs from the key (IJB-A faces)
    boxes: list[tuple[float, float, float, float]] | None = None  # face box (x, y, w, h) of each key
    origins: dict[str, str] = field(default_factory=dict)  # key -> "file:line" that first named it
    landmarks: list[np.ndarray] | None = None  # [5, 2] points of each key: the face is aligned by them (IJB-B/C)

    def file(self, i: int) -> str:
        return self.keys[i] if self.files is None else self.files[i]


@dataclass(frozen=True)
class ProtocolFeatures:
    features: Features  # rows of the available keys
    missing: list[str]  # keys dropped under allow_missing
    model_run: Path | None = None  # the training run the checkpoint belongs to
    iteration: int = 0
    embedded: int = 0  # rows embedded now (the rest came from the cache)
    checkpoint: Path | None = None  # the model file the features were embedded with (None: a features file)


def _unusable(images: ImageSet) -> list[int]:
    bad = []
    for i in range(len(images.keys)):
        box = images.boxes[i] if images.boxes is not None else None
        if box is not None and not (np.isfinite(box).all() and box[2] > 0 and box[3] > 0):
            bad.append(i)
        elif not (images.root / images.file(i)).is_file():
            bad.append(i)
    return bad


def _refuse_or_drop(cfg: DictConfig, images: ImageSet, bad: list[str], what: str) -> None:
    if not bad:
        return
    first = bad[0]
    where = images.origins.get(first, "")
    if not cfg.allow_missing:
        raise FacetrainError(f"{where + ': ' if where else ''}{len(bad)} of the {len(images.keys)} images the protocol "
                             f"needs {what} (first: {first}); fix data.root / the protocol files, or pass "
                             "allow_missing=true to drop them and the pairs that use them")
    log.warning("allow_missing: %d of %d images %s (first: %s); they and the pairs using them are dropped",
                len(bad), len(images.keys), what, first)


def _from_file(cfg: DictConfig, images: ImageSet, name: str) -> ProtocolFeatures:
    feats = load_features(abs_path(cfg.features))
    have = set(feats.paths)
    missing = [k for k in images.keys if k not in have]
    _refuse_or_drop(cfg, images, missing, f"are not in the features file {cfg.features}")
    keep = [k for k in images.keys if k in have]
    used = Features(feats.select(keep), keep)
    check_features(used, f"features file {cfg.features}",
                   f"re-create it from a trained model (`facetrain eval {name} model=RUN` writes features_{name}.npz)")
    return ProtocolFeatures(used, missing)


def _cache_dir(cfg: DictConfig, checkpoint: Path) -> Path:
    if cfg.cache_dir:
        return abs_path(cfg.cache_dir)
    return (run_of_checkpoint(checkpoint) or checkpoint.parent) / "eval_cache"


def gather_features(cfg: DictConfig, images: ImageSet, name: str) -> ProtocolFeatures:
    """Features of `images` from `cfg.features` or the model `cfg.model`; writes features_<name>.npz.

    Args:
        cfg: the eval config (features, model, mirror, embedding, cache, allow_missing, ...).
        images: what the protocol needs.
        name: the protocol, for the written features file.

    Returns:
        the features of the usable images and the list of dropped ones.
    """
    if "fars" in cfg.protocol:  # every protocol with TAR@FAR comes here before its first embedding
        check_fars(cfg.protocol.fars)
    if cfg.features:
        return _from_file(cfg, images, name)
    if not images.root.is_dir():
        raise FacetrainError(f"evaluation folder {images.root} does not exist; run `facetrain data synth` for the "
                             "demo data or set data.root=... to your copy of the dataset")
    bad_idx = _unusable(images)
    _refuse_or_drop(cfg, images, [images.keys[i] for i in bad_idx],
                    "are missing" + (" or have no usable face box" if images.boxes is not None else ""))
    bad = set(bad_idx)
    idx = [i for i in range(len(images.keys)) if i not in bad]
    checkpoint = resolve_checkpoint(str(cfg.model), abs_path(cfg.paths.runs))
    trained = load_embedder(checkpoint, str(cfg.embedding))
    pre = trained.preprocessing  # the model is embedded the way it was trained (fit, channels; size: the backbone)
    margin = float(cfg.protocol.get("margin", 0.0))
    files = [images.file(i) for i in idx]
    boxes = [images.boxes[i] for i in idx] if images.boxes is not None else None
    points = [images.landmarks[i] for i in idx] if images.landmarks is not None else None

    def embed(todo: list[int]) -> np.ndarray:
        log.info("embedding %d images with %s", len(todo), checkpoint)
        return embed_images(trained.embedder, images.root, [files[j] for j in todo], pick_device(cfg.device), mirror=cfg.mirror,
                            batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                            progress=bool(cfg.progress), boxes=None if boxes is None else [boxes[j] for j in todo],
                            margin=margin, fit=pre.fit, channels=pre.channels,
                            landmarks=None if points is None else [points[j] for j in todo])

    keys = [images.keys[i] for i in idx]
    if cfg.cache:
        settings = {"mirror": cfg.mirror, "embedding": cfg.embedding, "root": str(images.root.resolve()), "fit": pre.fit,
                    "margin": margin if boxes is not None else None} | ({"aligned": True} if points is not None else {})
        crops = boxes if points is None else [p.reshape(-1) for p in points]  # what must stay unchanged per row
        prints = [file_fingerprint(images.root / f, None if crops is None else crops[j]) for j, f in enumerate(files)]
        feats, embedded = cached_features(cache_file(_cache_dir(cfg, checkpoint), checkpoint, settings), keys, prints,
                                          embed)
    else:
        feats, embedded = embed(list(range(len(keys)))), len(keys)
    check_features(Features(feats, keys), f"the features of {checkpoint}",
                   "the model has diverged or collapsed; retrain it or evaluate another checkpoint with model=...")
    save_features(abs_path(cfg.run_dir) / f"features_{name}.npz", feats, keys)
    return ProtocolFeatures(Features(feats, keys), [images.keys[i] for i in bad_idx], run_of_checkpoint(checkpoint),
                            trained.iteration, embedded, checkpoint)
