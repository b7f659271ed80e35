"""`facetrain eval blufr`: LFW BLUFR (Liao et al. 2014) — verification VR@FAR=0.1% over all test pairs and
open-set identification DIR@FAR=1% at rank 1, 10 trials, reported as mu - sigma (as the BLUFR toolkit
asks; Wang et al. 2017 (NormFace), table 3, reports these two).

Verification scores every unordered pair of a trial's ~10k test images (~50M impostor pairs) in row blocks:
only the genuine scores, the top-k impostor scores and two score histograms (for the ROC plot) are kept.
Without PCA, calibration.json gains set `blufr`: each trial's thresholds at FAR 1e-1 ... 1e-6 over all its
test pairs (exact: the kept top-k reaches FAR 0.1), averaged over the trials (`trialwise_calibration` says why).

Also here, the parser of the BLUFR list files (Liao et al. 2014, `list/lfw/*.txt`): image list, labels and the 10 trials' sets.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from facetrain.config import abs_path
from facetrain.errors import FacetrainError
from facetrain.eval.calibrate import Calibrated
from facetrain.eval.features.source import ImageSet, gather_features
from facetrain.eval.metrics.calibration import CALIBRATION_FARS, far_thresholds_from_top, top_needed
from facetrain.eval.metrics.identification import open_set, split_probes
from facetrain.eval.metrics.pair_scoring import l2_normalize, make_pca
from facetrain.eval.metrics.roc import OperatingPoint, exact_k_threshold, matlab_round
from facetrain.eval.publish import publish
from facetrain.eval.tables import format_table, pct

__all__ = ["BlockVerification", "BlufrLists", "blockwise_verification", "blufr_image_path", "evaluate_blufr", "parse_blufr_lists", "trialwise_calibration"]


_LFW_NAME = re.compile(r"^(.+)_\d{4}\.\w+$")


def blufr_image_path(filename: str) -> str:
    """`Aaron_Eckhart_0001.jpg` -> `Aaron_Eckhart/Aaron_Eckhart_0001.jpg` (LFW's folder layout)."""
    match = _LFW_NAME.match(filename)
    return f"{match.group(1)}/{filename}" if match else filename


@dataclass(frozen=True)
class BlufrLists:
    images: list[str]  # paths relative to the LFW root, in image_list.txt order
    labels: np.ndarray  # int [N]
    train: list[np.ndarray]  # per trial: 0-based indices into images
    test: list[np.ndarray]
    gallery: list[np.ndarray]
    probe: list[np.ndarray]

    @property
    def trials(self) -> int:
        return len(self.test)


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FacetrainError(f"BLUFR list {path} does not exist; set protocol.lists=... to BLUFR's list/lfw folder")
    return path.read_text().splitlines()


def _index_sets(path: Path, names: list[str], blocks: int | None) -> list[np.ndarray]:
    """`n` then n lines `index, filename` (once, or `blocks` times after a first line with the count)."""
    lines, pos, sets = _lines(path), 0, []

    def count(line_no: int) -> int:
        token = lines[line_no].strip() if line_no < len(lines) else ""
        if not token.isdigit():
            raise FacetrainError(f"{path}:{line_no + 1}: expected a count, got {token!r}")
        return int(token)

    if blocks is None:
        blocks, pos = count(0), 1
    for _ in range(blocks):
        n, start = count(pos), pos + 1
        idx = []
        for k in range(start, start + n):
            fields = [f.strip() for f in lines[k].split(",")] if k < len(lines) else []
            if len(fields) != 2 or not fields[0].isdigit() or not 1 <= int(fields[0]) <= len(names):
                raise FacetrainError(f"{path}:{k + 1}: expected `index, filename` with 1 <= index <= {len(names)}")
            if fields[1] != names[int(fields[0]) - 1]:
                raise FacetrainError(f"{path}:{k + 1}: index {fields[0]} is {names[int(fields[0]) - 1]} in "
                                     f"image_list.txt, not {fields[1]}")
            idx.append(int(fields[0]) - 1)
        sets.append(np.array(idx, dtype=int))
        pos = start + n
    return sets


def parse_blufr_lists(folder: Path) -> BlufrLists:
    """Read image_list.txt, labels.txt and {train,test,gallery,probe}_set.txt; check they agree."""
    names = [ln.strip() for ln in _lines(folder / "image_list.txt") if ln.strip()]
    raw = [ln.strip() for ln in _lines(folder / "labels.txt") if ln.strip()]
    if len(raw) != len(names) or not all(r.isdigit() for r in raw):
        raise FacetrainError(f"{folder / 'labels.txt'} must hold one integer label per image_list.txt line "
                             f"({len(names)}); it has {len(raw)} lines")
    sets = {s: _index_sets(folder / f"{s}_set.txt", names, None) for s in ("train", "test", "gallery", "probe")}
    if len({len(v) for v in sets.values()}) != 1:
        raise FacetrainError(f"{folder}: the set files hold different numbers of trials")
    return BlufrLists([blufr_image_path(n) for n in names], np.array([int(r) for r in raw]), **sets)


log = logging.getLogger(__name__)

_BINS = 4000  # histogram bins over [-1, 1] for the plotted ROC only (the reported numbers are exact)


class BlockVerification:
    """Accumulates all-pairs verification scores block by block, keeping what the read-off needs."""

    def __init__(self, keep: int):
        self.keep = keep  # impostor scores to keep (the largest ones)
        self.genuine: list[np.ndarray] = []
        self._kept = np.zeros(0, dtype=np.float32)  # the largest impostor scores so far, unordered
        self._top: np.ndarray | None = None  # _kept sorted, descending (made when read)
        self.impostors = 0
        self.imp_hist = np.zeros(_BINS, dtype=np.int64)
        self.gen_hist = np.zeros(_BINS, dtype=np.int64)

    @property
    def top(self) -> np.ndarray:
        """The kept impostor scores, largest first."""
        if self._top is None:
            self._top = np.sort(self._kept)[::-1]
        return self._top

    def add(self, scores: np.ndarray, same: np.ndarray) -> None:
        gen, imp = scores[same], scores[~same]
        self.genuine.append(gen)
        self.impostors += imp.size
        for values, hist in ((gen, self.gen_hist), (imp, self.imp_hist)):
            hist += np.bincount(np.clip(((values + 1) * (_BINS / 2)).astype(np.int64), 0, _BINS - 1), minlength=_BINS)
        if len(self._kept) >= self.keep > 0:
            imp = imp[imp >= self._kept.min()]  # only these can enter the kept top-k
        merged = np.concatenate([self._kept, imp])
        if len(merged) > self.keep:  # partition, not sort: the kept set can be millions (calibration at FAR 0.1)
            merged = merged[np.argpartition(-merged, self.keep - 1)[:self.keep]] if self.keep else merged[:0]
        self._kept, self._top = merged, None

    def calibration(self, fars: Sequence[float] = CALIBRATION_FARS) -> list[dict]:
        """Thresholds at `fars` over all the pairs scored (metrics.calibration's rule, exact: needs the kept top)."""
        return far_thresholds_from_top(np.concatenate(self.genuine), self.top, self.impostors, fars)

    def point(self, far: float) -> OperatingPoint:
        """VR at `far`: exact-k threshold on the impostors (k = round(far * N)), VR = mean(genuine >= thr)."""
        genuine = np.concatenate(self.genuine)
        k = matlab_round(far * self.impostors)
        # k <= self.keep by construction; k = 0 falls back to BLUFR's midpoint rule
        thr = float(self.top[k - 1]) if k >= 1 else exact_k_threshold(self.top[:1], 0.0, genuine)
        # FAR reached: counted among the kept scores (exact unless ties run past the kept ones)
        return OperatingPoint(float(np.mean(genuine >= thr)), float(np.sum(self.top >= thr) / self.impostors), thr)

    def roc(self) -> tuple[np.ndarray, np.ndarray]:
        """(FAR, TAR) at the histogram's bin edges, from high to low threshold (for the plot)."""
        far = np.cumsum(self.imp_hist[::-1]) / max(self.impostors, 1)
        tar = np.cumsum(self.gen_hist[::-1]) / max(self.gen_hist.sum(), 1)
        return far, tar


def blockwise_verification(feats: np.ndarray, labels: np.ndarray, fars: list[float], block: int = 1024,
                           calibration_fars: Sequence[float] = ()) -> BlockVerification:
    """Score all pairs i < j of unit features [N, D] without an N x N matrix; keep what `fars` need (and
    `calibration_fars`: at FAR 0.1 a tenth of the impostor scores, ~19 MB for a BLUFR trial's 47M pairs)."""
    n = len(feats)
    pairs = n * (n - 1) // 2
    same_pairs = sum(c * (c - 1) // 2 for c in np.unique(labels, return_counts=True)[1])
    keep = max(matlab_round(max(fars) * (pairs - same_pairs)), 1) + 64  # a few extra to see ties at the edge
    if calibration_fars:
        keep = max(keep, top_needed(pairs - same_pairs, calibration_fars))
    acc = BlockVerification(keep)
    feats = feats.astype(np.float32)
    for s in range(0, n, block):
        e = min(n, s + block)
        scores = feats[s:e] @ feats[s:].T  # rows s..e against columns s..n: the upper triangle lives here
        upper = np.arange(s, e)[:, None] < np.arange(s, n)[None, :]
        same = labels[s:e, None] == labels[None, s:]
        acc.add(scores[upper], same[upper])
    return acc


def _trial_features(feats: np.ndarray, lists: BlufrLists, t: int, pca: float, center: bool) -> np.ndarray:
    """Unit features of all images for trial t, after an optional PCA fitted on the trial's training set only."""
    if not pca:
        return l2_normalize(feats)
    model = make_pca(pca).fit(feats[lists.train[t]])
    # BLUFR's demo projects without subtracting the training mean (X * W); center=true uses PCA's transform
    projected = model.transform(feats) if center else feats @ model.components_.T
    return l2_normalize(projected)


def trialwise_calibration(trials: list[list[dict]]) -> Calibrated:
    """One calibration from the thresholds each trial read off all its test pairs: their mean, and their spread.

    BLUFR's trials draw overlapping test sets from LFW's 13,233 images, so pooling their pairs would count a
    pair up to 10 times and claim FARs the data cannot resolve. Each trial instead estimates the threshold at a
    FAR from its own ~47M distinct impostor pairs; the record keeps their mean (what verify applies), their
    spread (std, ddof=1, min, max: how far the estimate moves between test sets) and the mean TAR and FAR
    reached at each trial's own threshold. A FAR counts as resolved only when every trial resolves it.
    """
    entries = []
    for per_trial in zip(*trials, strict=True):
        far = per_trial[0]["far"]
        entry = {"far": far, "impostor_pairs": min(e["impostor_pairs"] for e in per_trial),
                 "genuine_pairs": min(e["genuine_pairs"] for e in per_trial), "trials": len(per_trial)}
        if not all(e["resolved"] for e in per_trial):
            reason = next(e["reason"] for e in per_trial if not e["resolved"])
            entries.append(entry | {"resolved": False, "threshold": None, "tar": None, "false_accepts": None,
                                    "far_reached": None, "reason": f"a trial's test pairs: {reason}"})
            continue
        thr = np.array([e["threshold"] for e in per_trial])
        tars = [e["tar"] for e in per_trial if e["tar"] is not None]
        entries.append(entry | {
            "resolved": True, "threshold": float(thr.mean()),
            "threshold_std": float(thr.std(ddof=1)) if len(thr) > 1 else 0.0,
            "threshold_min": float(thr.min()), "threshold_max": float(thr.max()),
            "tar": float(np.mean(tars)) if tars else None,
            "false_accepts": None, "false_accepts_per_trial": [int(e["false_accepts"]) for e in per_trial],
            "far_reached": float(np.mean([e["far_reached"] for e in per_trial]))})
    first = [t[0] for t in trials]
    return Calibrated(entries, min(e["genuine_pairs"] for e in first), min(e["impostor_pairs"] for e in first), {
        "pooled": f"trial-wise: each threshold is the mean of {len(trials)} trials' thresholds, each read off all "
                  "pairs of that trial's test set (pairs counts: the smallest trial's)",
        "trials": len(trials),
        "trial_pairs": [{"genuine_pairs": t[0]["genuine_pairs"], "impostor_pairs": t[0]["impostor_pairs"]}
                        for t in trials]})


def _summary(name: str, values: list[float]) -> dict[str, float]:
    v = np.array(values)
    std = float(v.std(ddof=1)) if len(v) > 1 else float("nan")  # MATLAB std, as BLUFR reports
    return {f"{name}_mean": float(v.mean()), f"{name}_std": std, f"{name}_mu_minus_sigma": float(v.mean() - std)}


def evaluate_blufr(cfg: DictConfig) -> dict[str, float]:
    """Score a model (or a features file of LFW images) on BLUFR; print the table; write metrics.json."""
    p = cfg.protocol
    lists = parse_blufr_lists(abs_path(p.lists))
    # training images are only needed when something is fitted on them (PCA)
    used = sorted(set(np.concatenate(lists.test + (lists.train if p.pca else [])).tolist()))
    origins = {lists.images[i]: f"{abs_path(p.lists) / 'image_list.txt'}:{i + 1}" for i in used}
    source = gather_features(cfg, ImageSet(abs_path(cfg.data.root), [lists.images[i] for i in used], origins=origins),
                             "blufr")
    row = {k: i for i, k in enumerate(source.features.paths)}
    have = np.array([lists.images[i] in row for i in range(len(lists.images))])
    full = np.zeros((len(lists.images), source.features.features.shape[1]), np.float32)
    full[have] = source.features.features[[row[lists.images[i]] for i in np.flatnonzero(have)]]
    fars, fpirs, trials = [float(f) for f in p.fars], [float(f) for f in p.fpirs], int(p.trials or lists.trials)
    per: dict[str, list[float]] = {}
    curves, calibrations = {}, []
    for t in range(min(trials, lists.trials)):
        feats = _trial_features(full, lists, t, float(p.pca), bool(p.pca_center))
        test = lists.test[t][have[lists.test[t]]]
        ver = blockwise_verification(feats[test], lists.labels[test], fars, int(p.block),
                                     () if p.pca else CALIBRATION_FARS)
        if not p.pca:
            calibrations.append(ver.calibration())
        for far in fars:
            per.setdefault(f"blufr/vr@far={far:g}", []).append(ver.point(far).tar)
        gal, prb = lists.gallery[t][have[lists.gallery[t]]], lists.probe[t][have[lists.probe[t]]]
        probes = split_probes(feats[prb] @ feats[gal].T, lists.labels[prb], lists.labels[gal])
        for fpir in fpirs:
            per.setdefault(f"blufr/dir@far={fpir:g}_rank1", []).append(open_set(probes, fpir, rank=1).tpir)
        curves[f"trial {t + 1}"] = ver.roc()
        log.info("BLUFR trial %d: %d test images, %d genuine / %d impostor pairs", t + 1, len(test),
                 sum(len(g) for g in ver.genuine), ver.impostors)
    m = {k2: v2 for k, values in per.items() for k2, v2 in _summary(k, values).items()}
    m |= {"blufr/trials": float(len(curves)), "blufr/images_dropped": float(len(source.missing))}
    cols = [f"VR@FAR={f * 100:g}%" for f in fars] + [f"DIR@FAR={f * 100:g}% (rank 1)" for f in fpirs]
    keys = [f"blufr/vr@far={f:g}" for f in fars] + [f"blufr/dir@far={f:g}_rank1" for f in fpirs]
    table = format_table(["BLUFR, μ − σ over trials %", *cols], [
        ["μ − σ", *[pct(m[f"{k}_mu_minus_sigma"]) for k in keys]],
        ["mean ± std (ddof=1)", *[pct(m[f"{k}_mean"], m[f"{k}_std"]) for k in keys]]])
    table = f"LFW BLUFR, {len(curves)} trial(s)\n" + table
    if p.pca:
        print("calibration.json not written: PCA-projected scores are not the plain cosine of two embeddings "
              "(protocol.pca=0 calibrates)")
    return publish(cfg, "blufr", m, table, curves, source,
                   calibration={"blufr": trialwise_calibration(calibrations)} if calibrations else None)
