"""`facetrain eval lfw`: the 6,000-pair LFW View 2 protocol (10-fold accuracy, threshold from 9 folds)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig
from sklearn.metrics import roc_auc_score

from facetrain.config import abs_path
from facetrain.errors import FacetrainError
from facetrain.eval.embedder import embed_images
from facetrain.eval.features import Features, load_features, save_features
from facetrain.eval.lfw_pairs import LfwPairs, parse_lfw_pairs
from facetrain.eval.model_source import load_backbone, resolve_model
from facetrain.eval.report import format_table, pct
from facetrain.eval.verification import cosine_scores, kfold_accuracy
from facetrain.train.device import pick_device
from facetrain.train.metrics_file import update_metrics

__all__ = ["evaluate_lfw", "lfw_metrics"]

log = logging.getLogger(__name__)


def _check_images(root: Path, images: list[str], pairs_file: Path) -> None:
    if not root.is_dir():
        raise FacetrainError(f"LFW folder {root} does not exist; run `facetrain data synth` for the demo data "
                             "or set data.root=... to your LFW images")
    missing = [p for p in images if not (root / p).is_file()]
    if missing:
        raise FacetrainError(f"{pairs_file} names {len(missing)} image(s) missing under {root} "
                             f"(first: {missing[0]}); is data.root the LFW folder for these pairs?")


def lfw_metrics(pairs: LfwPairs, feats: Features) -> dict[str, float]:
    """All LFW numbers from features of the protocol's images."""
    left, right = feats.select(pairs.left), feats.select(pairs.right)
    scores = cosine_scores(left, right)
    folds = kfold_accuracy(scores, pairs.same, pairs.fold)
    return {
        "lfw/acc_mean": folds.mean,
        "lfw/acc_std": folds.std,
        "lfw/threshold_mean": float(folds.thresholds.mean()),
        "lfw/auc": float(roc_auc_score(pairs.same, scores)),
        "lfw/pairs": float(len(pairs)),
    }


def _features(cfg: DictConfig, pairs: LfwPairs, root: Path, out_dir: Path) -> tuple[Features, Path | None]:
    """Features from a file, or by embedding the images with the model; also says which run it came from."""
    if cfg.features:
        return load_features(abs_path(cfg.features)), None
    _check_images(root, pairs.images, abs_path(cfg.protocol.pairs))
    checkpoint = resolve_model(str(cfg.model), abs_path(cfg.paths.runs))
    log.info("embedding %d images with %s", len(pairs.images), checkpoint)
    feats = embed_images(load_backbone(checkpoint), root, pairs.images, pick_device(cfg.device),
                         mirror=cfg.mirror, batch_size=int(cfg.batch_size), num_workers=int(cfg.num_workers),
                         progress=bool(cfg.progress))
    save_features(out_dir / "features_lfw.npz", feats, pairs.images)
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else None
    return Features(feats, pairs.images), run_dir


def evaluate_lfw(cfg: DictConfig) -> dict[str, float]:
    """Score a model (or a features file) on LFW; print the table; write metrics.json."""
    pairs = parse_lfw_pairs(abs_path(cfg.protocol.pairs))
    out_dir = abs_path(cfg.run_dir)
    feats, model_run = _features(cfg, pairs, abs_path(cfg.data.root), out_dir)
    metrics = lfw_metrics(pairs, feats)
    update_metrics(out_dir, metrics)
    if model_run is not None:
        update_metrics(model_run, metrics)  # the training run's metrics.json gains its LFW numbers
    print(format_table(
        ["protocol", "pairs", "accuracy % (mean ± std, 10 folds)", "AUC %"],
        [["LFW", len(pairs), pct(metrics["lfw/acc_mean"], metrics["lfw/acc_std"]), pct(metrics["lfw/auc"])]],
    ))
    print(f"metrics: {out_dir / 'metrics.json'}" + (f" and {model_run / 'metrics.json'}" if model_run else ""))
    return metrics
