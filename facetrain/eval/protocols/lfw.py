"""`facetrain eval lfw`: the 6,000-pair LFW View 2 protocol (10-fold accuracy, threshold from 9 folds), plus ROC numbers.

Also here, the parser of LFW's pairs.txt (View 2: `folds<TAB>n`, then per fold n matched and n mismatched lines).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from facetrain.config import abs_path
from facetrain.errors import FacetrainError
from facetrain.eval.features.file import Features
from facetrain.eval.features.source import ImageSet, gather_features
from facetrain.eval.metrics.norm_sets import kept_after_rejecting, norm_set_pairs, norm_sets
from facetrain.eval.metrics.pair_scoring import fold_pca_scores, pair_scores
from facetrain.eval.metrics.roc import eer, roc_auc, tar_at_far
from facetrain.eval.metrics.verification import FoldAccuracy, held_out_scores, kfold_accuracy
from facetrain.eval.plots import roc_from_scores
from facetrain.eval.publish import publish
from facetrain.eval.tables import format_table, pct

__all__ = ["LfwPairs", "evaluate_lfw", "lfw_fold_accuracy", "lfw_image_path", "lfw_metrics", "lfw_scores", "parse_lfw_pairs"]


def lfw_image_path(name: str, number: int) -> str:
    """LFW's file naming: `Name/Name_0001.jpg`, relative to the LFW root."""
    return f"{name}/{name}_{number:04d}.jpg"


@dataclass(frozen=True)
class LfwPairs:
    """Pairs in file order (the order defines the folds)."""

    left: list[str]
    right: list[str]
    same: np.ndarray  # bool [P]
    fold: np.ndarray  # int [P], 0-based
    folds: int
    per_fold: int  # n: matched pairs per fold (and as many mismatched)

    def __len__(self) -> int:
        return len(self.left)

    @property
    def images(self) -> list[str]:
        """Every image the protocol needs, once each, sorted."""
        return sorted(set(self.left) | set(self.right))


def _number(token: str, path: Path, line_no: int) -> int:
    if not token.isdigit() or int(token) < 1:
        raise FacetrainError(f"{path}:{line_no}: image number {token!r} is not a positive integer")
    return int(token)


def _header(tokens: list[str], path: Path) -> tuple[int, int]:
    """`folds n` (View 2) or just `n` (View 1's single-fold files)."""
    if len(tokens) in (1, 2) and all(t.isdigit() and int(t) > 0 for t in tokens):
        return (1, int(tokens[0])) if len(tokens) == 1 else (int(tokens[0]), int(tokens[1]))
    raise FacetrainError(f"{path}:1: expected the header `folds<TAB>pairs_per_fold` (e.g. `10\t300`), "
                         f"got {' '.join(tokens)!r}")


def _headerless(lines: list[list[str]], path: Path, folds: int) -> tuple[int, int]:
    """(folds, n) of a list without the header line (RFW's `<Group>_pairs.txt`): `folds` equal folds."""
    if len(lines) % (2 * folds):
        raise FacetrainError(f"{path}: {len(lines)} pair lines without a `folds<TAB>n` header cannot form "
                             f"{folds} folds of n matched + n mismatched pairs; add the header or fix the list")
    return folds, len(lines) // (2 * folds)


def parse_lfw_pairs(path: Path, folds: int = 10) -> LfwPairs:
    """Read and check a pairs file; every malformed line is reported with its file and line number.

    A file that starts with a pair line instead of the `folds<TAB>n` header (RFW's lists) is read as `folds`
    folds of equal size, each n matched then n mismatched pairs.
    """
    if not path.is_file():
        raise FacetrainError(f"pairs file {path} does not exist; set protocol.pairs=... to LFW's pairs.txt")
    lines = [ln.split() for ln in path.read_text().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise FacetrainError(f"{path} is empty")
    skip = 0 if len(lines[0]) in (3, 4) else 1  # a pair line: no header (the header has one or two fields)
    folds, n = _headerless(lines, path, folds) if not skip else _header(lines[0], path)
    if len(lines) - skip != 2 * folds * n:
        raise FacetrainError(f"{path}: the header promises {folds} folds of {n} + {n} pairs "
                             f"({2 * folds * n} lines) but the file has {len(lines) - 1}")
    left, right, same = [], [], []
    for k, tokens in enumerate(lines[skip:]):
        line_no, matched = k + 1 + skip, (k % (2 * n)) < n
        if matched and len(tokens) == 3:
            a = lfw_image_path(tokens[0], _number(tokens[1], path, line_no))
            b = lfw_image_path(tokens[0], _number(tokens[2], path, line_no))
        elif not matched and len(tokens) == 4:
            a = lfw_image_path(tokens[0], _number(tokens[1], path, line_no))
            b = lfw_image_path(tokens[2], _number(tokens[3], path, line_no))
        else:
            want = "`name<TAB>i<TAB>j` (a matched pair)" if matched else "`name1<TAB>i<TAB>name2<TAB>j` (mismatched)"
            raise FacetrainError(f"{path}:{line_no}: expected {want}, got {len(tokens)} fields: "
                                 f"{' '.join(tokens)!r}")
        left.append(a)
        right.append(b)
        same.append(matched)
    fold = np.repeat(np.arange(folds), 2 * n)
    return LfwPairs(left, right, np.array(same, dtype=bool), fold, folds, n)


def lfw_scores(left: np.ndarray, right: np.ndarray, fold: np.ndarray, metric: str = "cosine", pca: float = 0
               ) -> np.ndarray:
    """[folds, P] scores: row f scores every pair as seen from fold f (they differ only with per-fold PCA)."""
    if pca:
        return fold_pca_scores(left, right, fold, pca, metric)
    return np.broadcast_to(pair_scores(left, right, metric), (len(np.unique(fold)), len(left)))


def lfw_fold_accuracy(pairs: LfwPairs, feats: Features, metric: str = "cosine", pca: float = 0
                      ) -> tuple[FoldAccuracy, np.ndarray]:
    """The 10-fold accuracy (threshold from the other folds) and the [folds, P] scores it was read from."""
    scores = lfw_scores(feats.select(pairs.left), feats.select(pairs.right), pairs.fold, metric, pca)
    return kfold_accuracy(scores, pairs.same, pairs.fold), scores


def lfw_metrics(pairs: LfwPairs, feats: Features, metric: str = "cosine", pca: float = 0,
                fars: tuple[float, ...] = (1e-3,), far_readoff: str = "interp", norm_set_count: int = 0,
                reject: tuple[float, ...] = ()) -> tuple[dict[str, float], np.ndarray]:
    """All LFW numbers from features of the protocol's images; also the pooled out-of-fold scores.

    Accuracy: mean and population std (ddof=0) of the 10 held-out fold accuracies. AUC, EER and TAR@FAR
    use each pair's held-out score (identical to the plain score unless PCA is on).
    """
    result, scores = lfw_fold_accuracy(pairs, feats, metric, pca)
    accs, thrs, correct = result.accuracies, result.thresholds, result.correct
    held_out = held_out_scores(scores, pairs.fold)
    metrics = {
        "lfw/acc_mean": float(accs.mean()), "lfw/acc_std": float(accs.std()),
        "lfw/acc_stderr": float(accs.std(ddof=1) / np.sqrt(len(accs))) if len(accs) > 1 else float("nan"),
        "lfw/threshold_mean": float(thrs.mean()), "lfw/auc": roc_auc(pairs.same, held_out),
        "lfw/eer": eer(pairs.same, held_out), "lfw/pairs": float(len(pairs)),
    }
    for far in fars:
        metrics[f"lfw/tar@far={far:g}"] = tar_at_far(pairs.same, held_out, far, far_readoff).tar
    if norm_set_count:
        norms = {p: float(n) for p, n in zip(feats.paths, np.linalg.norm(feats.features, axis=1), strict=True)}
        image_sets = dict(zip(pairs.images, norm_sets(np.array([norms[p] for p in pairs.images]), norm_set_count),
                              strict=True))
        a, b = np.array([image_sets[p] for p in pairs.left]), np.array([image_sets[p] for p in pairs.right])
        for key, mask in norm_set_pairs(a, b, norm_set_count).items():
            metrics[f"lfw/norm_sets/{key}/acc"] = float(correct[mask].mean()) if mask.any() else float("nan")
            metrics[f"lfw/norm_sets/{key}/pairs"] = float(mask.sum())
    if reject:  # the norm as a quality score (MagFace): accuracy of the pairs left after rejecting the lowest
        norm = {p: float(n) for p, n in zip(feats.paths, np.linalg.norm(feats.features, axis=1), strict=True)}
        quality = np.minimum([norm[p] for p in pairs.left], [norm[p] for p in pairs.right])
        for key, mask in kept_after_rejecting(quality, reject).items():
            metrics[f"lfw/reject/{key}/acc"] = float(correct[mask].mean())
            metrics[f"lfw/reject/{key}/pairs"] = float(mask.sum())
    return metrics, held_out


def _keep_available(pairs: LfwPairs, available: set[str]) -> LfwPairs:
    keep = np.array([a in available and b in available for a, b in zip(pairs.left, pairs.right, strict=True)])
    pick = np.flatnonzero(keep)
    return LfwPairs([pairs.left[i] for i in pick], [pairs.right[i] for i in pick], pairs.same[keep],
                    pairs.fold[keep], pairs.folds, pairs.per_fold)


def _table(metrics: dict[str, float], fars, norm_set_count: int) -> str:
    far_cols = [f"TAR@FAR={far:g} %" for far in fars]
    rows = [["LFW", int(metrics["lfw/pairs"]), pct(metrics["lfw/acc_mean"], metrics["lfw/acc_std"]),
             pct(metrics["lfw/auc"]), pct(metrics["lfw/eer"])] + [pct(metrics[f"lfw/tar@far={f:g}"]) for f in fars]]
    text = format_table(["protocol", "pairs", "accuracy % (mean ± std, 10 folds)", "AUC %", "EER %", *far_cols], rows)
    if norm_set_count:
        sets = [k.split("/")[2] for k in metrics if k.endswith("/acc") and "/norm_sets/" in k]
        text += "\n\n" + format_table(["norm sets", "pairs", "accuracy %"], [
            [s, int(metrics[f"lfw/norm_sets/{s}/pairs"]), pct(metrics[f"lfw/norm_sets/{s}/acc"])] for s in sets])
    shares = [k.split("/")[2] for k in metrics if k.startswith("lfw/reject/") and k.endswith("/acc")]
    if shares:
        text += "\n\n" + format_table(["lowest-norm pairs rejected", "pairs kept", "accuracy %"], [
            [s, int(metrics[f"lfw/reject/{s}/pairs"]), pct(metrics[f"lfw/reject/{s}/acc"])] for s in shares])
    return text


def evaluate_lfw(cfg: DictConfig) -> dict[str, float]:
    """Score a model (or a features file) on LFW; print the table; write metrics.json and the ROC."""
    pairs_file = abs_path(cfg.protocol.pairs)
    root = abs_path(cfg.data.root)
    if not root.is_dir() and not pairs_file.is_file():  # the folder is what is wrong, not protocol.pairs
        raise FacetrainError(f"data.root={root} is not a folder; point it at the LFW tree (with pairs.txt), e.g. "
                             "data.root=/data/lfw, or run `facetrain data synth` for the synthetic one")
    pairs = parse_lfw_pairs(pairs_file)
    origins = {}
    for i in range(len(pairs) - 1, -1, -1):  # the first line naming an image wins
        origins[pairs.left[i]] = origins[pairs.right[i]] = f"{pairs_file}:{i + 2}"
    source = gather_features(cfg, ImageSet(root, pairs.images, origins=origins), "lfw")
    kept = _keep_available(pairs, set(source.features.paths)) if source.missing else pairs
    fars = tuple(float(f) for f in cfg.protocol.fars)
    n_sets = int(cfg.analysis.norm_sets)
    metrics, scores = lfw_metrics(kept, source.features, str(cfg.protocol.metric), float(cfg.protocol.pca), fars,
                                  str(cfg.protocol.far_readoff), n_sets,
                                  tuple(float(f) for f in cfg.analysis.get("reject") or ()))
    metrics["lfw/pairs_dropped"] = float(len(pairs) - len(kept))
    plain = str(cfg.protocol.metric) == "cosine" and not float(cfg.protocol.pca)  # what `facetrain verify` computes
    if not plain:
        print("calibration.json not written: these scores are not the plain cosine of two embeddings "
              "(protocol.metric=cosine protocol.pca=0 calibrate)")
    return publish(cfg, "lfw", metrics, _table(metrics, fars, n_sets), {"LFW": roc_from_scores(kept.same, scores)},
                   source, calibration={"lfw": (kept.same, scores)} if plain else None)
