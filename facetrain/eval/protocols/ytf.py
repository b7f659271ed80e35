"""`facetrain eval ytf`: YouTube Faces, 5,000 video pairs in 10 splits; mean frame-pair cosine and HIK-SVM.

Also here, the parser of YouTube Faces' splits.txt: `split, pair, Person/idx, Person/idx, same` (10 splits of 500 pairs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from facetrain.config import abs_path
from facetrain.errors import FacetrainError
from facetrain.eval.features.source import ImageSet, gather_features
from facetrain.eval.metrics.norm_sets import norm_set_pairs, norm_sets
from facetrain.eval.metrics.roc import eer, roc_auc
from facetrain.eval.metrics.verification import held_out_scores, kfold_accuracy
from facetrain.eval.metrics.video_scores import (
    hik_kernel,
    hik_svm_accuracy,
    pair_histograms,
    video_mean_scores,
)
from facetrain.eval.plots import roc_from_scores
from facetrain.eval.publish import publish
from facetrain.eval.tables import format_table, pct

__all__ = ["YtfPairs", "evaluate_ytf", "parse_ytf_splits", "subsample", "ytf_metrics"]


@dataclass(frozen=True)
class YtfPairs:
    """Video pairs in file order; a video is `Person/<video index>`."""

    left: list[str]
    right: list[str]
    same: np.ndarray  # bool [P]
    fold: np.ndarray  # int [P], 0-based split
    lines: list[int]  # line number of each pair in the file

    def __len__(self) -> int:
        return len(self.left)

    @property
    def videos(self) -> list[str]:
        return sorted(set(self.left) | set(self.right))


def _is_header(fields: list[str]) -> bool:
    return not fields[0].isdigit()  # the official file's first line names its columns


def _video(token: str, path: Path, line_no: int) -> str:
    parts = token.split("/")
    if len(parts) != 2 or not parts[0] or not parts[1].isdigit():
        raise FacetrainError(f"{path}:{line_no}: video {token!r} is not `Person/<video index>`")
    return token


def parse_ytf_splits(path: Path) -> YtfPairs:
    """Read splits.txt (with or without its header line, LF or CRLF); malformed lines name file and line."""
    if not path.is_file():
        raise FacetrainError(f"splits file {path} does not exist; set protocol.splits=... to YouTube Faces' splits.txt")
    left, right, same, fold, lines = [], [], [], [], []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        fields = [f.strip() for f in line.split(",")]
        if fields == [""]:
            continue
        if line_no == 1 and _is_header(fields):
            continue
        if len(fields) != 5 or not fields[0].isdigit() or not fields[1].isdigit() or fields[4] not in ("0", "1"):
            raise FacetrainError(f"{path}:{line_no}: expected `split, pair, Person/idx, Person/idx, 0|1`, got {line!r}")
        left.append(_video(fields[2], path, line_no))
        right.append(_video(fields[3], path, line_no))
        same.append(fields[4] == "1")
        fold.append(int(fields[0]) - 1)
        lines.append(line_no)
    if not left:
        raise FacetrainError(f"{path} holds no pairs")
    return YtfPairs(left, right, np.array(same, dtype=bool), np.array(fold), lines)


_IMAGE = re.compile(r"\.(jpe?g|png|bmp)$", re.IGNORECASE)


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def subsample(frames: list[str], count: int) -> list[str]:
    """`count` frames evenly spread over the video (first and last included); 0 = all frames."""
    if count <= 0 or len(frames) <= count:
        return frames
    return [frames[i] for i in np.unique(np.linspace(0, len(frames) - 1, count).round().astype(int))]


def _frames_on_disk(root: Path, frames_dir: str, video: str) -> list[str]:
    folder = root / frames_dir / video
    if not folder.is_dir():
        return []
    return [f"{frames_dir}/{video}/{p.name}" for p in sorted(folder.iterdir(), key=lambda p: _natural(p.name))
            if _IMAGE.search(p.name)]


def _frames_in_file(paths: list[str], frames_dir: str) -> dict[str, list[str]]:
    videos: dict[str, list[str]] = {}
    for p in paths:
        parts = p.split("/")
        if len(parts) == 4 and parts[0] == frames_dir:
            videos.setdefault(f"{parts[1]}/{parts[2]}", []).append(p)
    return {v: sorted(f, key=lambda p: _natural(p.rsplit("/", 1)[1])) for v, f in videos.items()}


def _video_frames(cfg: DictConfig, pairs: YtfPairs, root: Path, splits_file: Path) -> dict[str, list[str]]:
    """The (subsampled) frames of every video in the protocol; a video without frames is an error or dropped."""
    frames_dir, count = str(cfg.protocol.frames_dir), int(cfg.protocol.frames)
    if cfg.features:
        from facetrain.eval.features.file import load_features

        listed = _frames_in_file(load_features(abs_path(cfg.features)).paths, frames_dir)
    else:
        listed = {v: _frames_on_disk(root, frames_dir, v) for v in pairs.videos}
    videos = {v: subsample(listed.get(v, []), count) for v in pairs.videos}
    empty = [v for v, f in videos.items() if not f]
    if empty and not cfg.allow_missing:
        line = next(pairs.lines[i] for i in range(len(pairs)) if empty[0] in (pairs.left[i], pairs.right[i]))
        where = f"the features file {cfg.features}" if cfg.features else f"{root / frames_dir}"
        raise FacetrainError(f"{splits_file}:{line}: video {empty[0]} has no frames in {where} ({len(empty)} videos "
                             "lack frames); fix data.root / protocol.frames_dir, or pass allow_missing=true to drop "
                             "their pairs")
    return {v: f for v, f in videos.items() if f}


def _fold_scores(videos: dict[str, np.ndarray], pairs: YtfPairs, center: bool, histograms: bool
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """[folds, P] mean scores and [folds, P, 100] histograms (one row unless frames are centred per split)."""
    if not center:
        s = video_mean_scores(videos, pairs.left, pairs.right)[None]
        return s, pair_histograms(videos, pairs.left, pairs.right)[None] if histograms else None
    raw_means = {v: f.mean(axis=0) for v, f in videos.items()}
    scores, hists = [], []
    for f in np.unique(pairs.fold):  # compare_feature.m: mu over the training pairs' video slots
        train = np.flatnonzero(pairs.fold != f)
        mu = np.mean([raw_means[pairs.left[i]] for i in train] + [raw_means[pairs.right[i]] for i in train], axis=0)
        scores.append(video_mean_scores(videos, pairs.left, pairs.right, mu))
        if histograms:
            hists.append(pair_histograms(videos, pairs.left, pairs.right, mu))
    return np.stack(scores), np.stack(hists) if histograms else None


def ytf_metrics(videos: dict[str, np.ndarray], pairs: YtfPairs, center: bool = False, classifier: str = "threshold",
                hik: bool = True, hik_c: float = 1.0, norm_set_count: int = 0) -> tuple[dict[str, float], np.ndarray]:
    """All YTF numbers from frame features grouped by video; also the held-out mean scores (for the ROC)."""
    scores, hists = _fold_scores(videos, pairs, center, hik)
    held_out = held_out_scores(scores, pairs.fold)
    accs = kfold_accuracy(scores, pairs.same, pairs.fold, classifier).accuracies
    m = {"ytf/acc_mean": float(accs.mean()), "ytf/acc_std": float(accs.std()),
         "ytf/auc": roc_auc(pairs.same, held_out), "ytf/eer": eer(pairs.same, held_out),
         "ytf/pairs": float(len(pairs)), "ytf/frames_mean": float(np.mean([len(f) for f in videos.values()]))}
    if hik:
        if len(hists) == 1:
            hik_accs = hik_svm_accuracy(hists[0], pairs.same, pairs.fold, hik_c)
        else:
            hik_accs = np.array([hik_svm_accuracy(hists[k], pairs.same, pairs.fold, hik_c,
                                                  hik_kernel(hists[k], hists[k]))[k] for k in range(len(hists))])
        m |= {"ytf/hik_acc_mean": float(hik_accs.mean()), "ytf/hik_acc_std": float(hik_accs.std())}
    if norm_set_count:
        names = sorted(videos)
        sets = dict(zip(names, norm_sets(np.array([np.linalg.norm(videos[v].mean(axis=0)) for v in names]),
                                         norm_set_count), strict=True))
        a, b = np.array([sets[v] for v in pairs.left]), np.array([sets[v] for v in pairs.right])
        for key, mask in norm_set_pairs(a, b, norm_set_count).items():
            m[f"ytf/norm_sets/{key}/auc"] = (roc_auc(pairs.same[mask], held_out[mask])
                                             if len(set(pairs.same[mask].tolist())) == 2 else float("nan"))
            m[f"ytf/norm_sets/{key}/pairs"] = float(mask.sum())
    return m, held_out


def _keep(pairs: YtfPairs, available: set[str]) -> YtfPairs:
    keep = np.array([a in available and b in available for a, b in zip(pairs.left, pairs.right, strict=True)])
    idx = np.flatnonzero(keep)
    return YtfPairs([pairs.left[i] for i in idx], [pairs.right[i] for i in idx], pairs.same[keep], pairs.fold[keep],
                    [pairs.lines[i] for i in idx])


def evaluate_ytf(cfg: DictConfig) -> dict[str, float]:
    """Score a model (or a features file of frames) on YouTube Faces; print the table; write metrics.json."""
    p = cfg.protocol
    splits_file, root = abs_path(p.splits), abs_path(cfg.data.root)
    pairs = parse_ytf_splits(splits_file)
    frames = _video_frames(cfg, pairs, root, splits_file)
    keys = [f for v in sorted(frames) for f in frames[v]]
    source = gather_features(cfg, ImageSet(root, keys), "ytf")
    row = {k: i for i, k in enumerate(source.features.paths)}
    videos = {v: source.features.features[[row[k] for k in fs if k in row]] for v, fs in frames.items()}
    videos = {v: f for v, f in videos.items() if len(f)}
    kept = _keep(pairs, set(videos))
    n_sets = int(cfg.analysis.norm_sets)
    m, scores = ytf_metrics(videos, kept, bool(p.center), str(p.classifier), bool(p.hik), float(p.hik_c), n_sets)
    m["ytf/pairs_dropped"] = float(len(pairs) - len(kept))
    rows = [["YTF", len(kept), f"{m['ytf/frames_mean']:.1f}", pct(m["ytf/acc_mean"], m["ytf/acc_std"]),
             pct(m["ytf/hik_acc_mean"], m["ytf/hik_acc_std"]) if p.hik else "-", pct(m["ytf/auc"]), pct(m["ytf/eer"])]]
    table = format_table(["protocol", "pairs", "frames/video", "accuracy % (mean cos, 10 splits)",
                          "HIK-SVM accuracy %", "AUC %", "EER %"], rows)
    if n_sets:
        table += "\n\n" + format_table(["norm sets", "pairs", "AUC %"], [
            [k.split("/")[2], int(m[f"ytf/norm_sets/{k.split('/')[2]}/pairs"]), pct(v)]
            for k, v in m.items() if k.startswith("ytf/norm_sets/") and k.endswith("/auc")])
    return publish(cfg, "ytf", m, table, {"YTF (mean cosine)": roc_from_scores(kept.same, scores)}, source,
                   calibration=None if p.center else {"ytf": (kept.same, scores)}, pairs_of="video")
