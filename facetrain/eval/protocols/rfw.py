"""`facetrain eval rfw`: Racial Faces in-the-Wild (Wang et al. 2019), the fairness table.

RFW's test set holds four groups, each with its own images (`data/<Group>/<id>/<id>_<NNNN>.jpg`) and its own
pairs list (`txts/<Group>/<Group>_pairs.txt`: LFW's pairs lines, no header, 10 folds of 300 + 300). Each group
is scored exactly as `facetrain eval lfw` scores a tree (10-fold accuracy, threshold from the other 9 folds);
then the spread between groups: the mean and standard deviation of the group accuracies and the skewed error
ratio SER = max error / min error (Wang and Deng 2020). TAR is read at ONE threshold for all groups, set at the
target FAR on all groups' pairs pooled, so a group whose impostors score higher pays in FAR, not in a
threshold of its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from facetrain.config import abs_path
from facetrain.errors import FacetrainError
from facetrain.eval.features.file import Features
from facetrain.eval.features.source import ImageSet, gather_features
from facetrain.eval.metrics.roc import tar_at_far
from facetrain.eval.plots import roc_from_scores
from facetrain.eval.protocols.lfw import LfwPairs, lfw_metrics, parse_lfw_pairs
from facetrain.eval.publish import publish
from facetrain.eval.tables import format_table, pct

__all__ = ["THRESHOLD_READOFFS", "evaluate_rfw", "group_pairs", "rfw_metrics"]

THRESHOLD_READOFFS = ("exact_k", "floor", "nearest")  # the read-offs that give one threshold to share


def group_pairs(root: Path, group: str, images: str, pairs: str) -> LfwPairs:
    """One group's pairs, its image paths relative to `root` (`data/<Group>/<id>/<id>_0001.jpg`)."""
    parsed = parse_lfw_pairs(root / pairs.format(group=group))
    prefix = images.format(group=group).rstrip("/") + "/"
    return LfwPairs([prefix + p for p in parsed.left], [prefix + p for p in parsed.right], parsed.same, parsed.fold,
                    parsed.folds, parsed.per_fold)


def _available(pairs: LfwPairs, have: set[str]) -> LfwPairs:
    keep = np.array([a in have and b in have for a, b in zip(pairs.left, pairs.right, strict=True)], dtype=bool)
    pick = np.flatnonzero(keep)
    return LfwPairs([pairs.left[i] for i in pick], [pairs.right[i] for i in pick], pairs.same[keep], pairs.fold[keep],
                    pairs.folds, pairs.per_fold)


def _key(group: str) -> str:
    return f"rfw/{group.lower()}"


def rfw_metrics(groups: dict[str, LfwPairs], feats: Features, metric: str = "cosine", pca: float = 0,
                fars: tuple[float, ...] = (1e-3,), far_readoff: str = "exact_k"
                ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Every group's `eval lfw` numbers as `rfw/<group>/...`, the spread between groups and TAR at common thresholds.

    Returns the metrics and each group's held-out pair scores.
    """
    if far_readoff not in THRESHOLD_READOFFS:
        raise FacetrainError(f"protocol.far_readoff={far_readoff} gives no threshold to share between groups; use "
                             f"one of {', '.join(THRESHOLD_READOFFS)}")
    metrics, scores = {}, {}
    for group, pairs in groups.items():
        numbers, scores[group] = lfw_metrics(pairs, feats, metric, pca, (), far_readoff)
        metrics |= {f"{_key(group)}/{k[len('lfw/'):]}": v for k, v in numbers.items()}
    accs = np.array([metrics[f"{_key(g)}/acc_mean"] for g in groups])
    errors = 1 - accs
    metrics |= {"rfw/acc_mean": float(accs.mean()), "rfw/acc_std": float(accs.std()),
                "rfw/ser": float(errors.max() / errors.min()) if errors.min() > 0 else float("nan")}
    same = np.concatenate([groups[g].same for g in groups])
    pooled = np.concatenate([scores[g] for g in groups])
    for far in fars:
        point = tar_at_far(same, pooled, far, far_readoff)
        metrics |= {f"rfw/tar@far={far:g}": point.tar, f"rfw/far@far={far:g}": point.far,
                    f"rfw/threshold@far={far:g}": point.threshold}
        for group in groups:
            accepted, labels = scores[group] >= point.threshold, groups[group].same
            metrics[f"{_key(group)}/tar@far={far:g}"] = float(accepted[labels].mean())
            metrics[f"{_key(group)}/far@far={far:g}"] = float(accepted[~labels].mean())
    return metrics, scores


def _table(groups: list[str], metrics: dict[str, float], fars: tuple[float, ...]) -> str:
    far_cols = [c for f in fars for c in (f"TAR@FAR={f:g} %", "FAR there %")]
    rows = [[g, int(metrics[f"{_key(g)}/pairs"]),
             pct(metrics[f"{_key(g)}/acc_mean"], metrics[f"{_key(g)}/acc_std"]), pct(1 - metrics[f"{_key(g)}/acc_mean"])]
            + [pct(metrics[f"{_key(g)}/{k}@far={f:g}"]) for f in fars for k in ("tar", "far")] for g in groups]
    ser = metrics["rfw/ser"]
    rows.append(["all groups", sum(r[1] for r in rows), f"{pct(metrics['rfw/acc_mean'], metrics['rfw/acc_std'])} "
                 "(across groups)", f"SER {ser:.2f}" if np.isfinite(ser) else "SER n/a (an error-free group)"]
                + [pct(metrics[f"rfw/{k}@far={f:g}"]) for f in fars for k in ("tar", "far")])
    return format_table(["group", "pairs", "accuracy % (mean ± std)", "error %", *far_cols], rows) + (
        "\nTAR at one threshold per FAR, set on all groups' pairs pooled; SER = largest error / smallest error")


def evaluate_rfw(cfg: DictConfig) -> dict[str, float]:
    """Score a model (or a features file) on RFW's groups; print the fairness table; write metrics.json and the ROC."""
    root = abs_path(cfg.data.root)
    names = [str(g) for g in cfg.protocol.groups]
    if not names:
        raise FacetrainError("protocol.groups is empty; name RFW's groups, e.g. protocol.groups=[African,Asian]")
    groups = {g: group_pairs(root, g, str(cfg.protocol.images), str(cfg.protocol.pairs)) for g in names}
    images, origins = [], {}
    for g in names:
        pairs_file = root / str(cfg.protocol.pairs).format(group=g)
        for i in range(len(groups[g]) - 1, -1, -1):  # the first line naming an image wins
            origins[groups[g].left[i]] = origins[groups[g].right[i]] = f"{pairs_file}:{i + 1}"
        images += groups[g].images
    source = gather_features(cfg, ImageSet(root, sorted(set(images)), origins=origins), "rfw")
    if source.missing:
        have = set(source.features.paths)
        groups = {g: _available(p, have) for g, p in groups.items()}
    fars = tuple(float(f) for f in cfg.protocol.fars)
    metrics, scores = rfw_metrics(groups, source.features, str(cfg.protocol.metric), float(cfg.protocol.pca), fars,
                                  str(cfg.protocol.far_readoff))
    curves = {g: roc_from_scores(groups[g].same, scores[g]) for g in names}
    return publish(cfg, "rfw", metrics, _table(names, metrics, fars), curves, source)
