"""`facetrain data audit`: decode every image once (digests, thumbnails, counts), optionally embed them with a
model, run the checks, write the report and the exclusion list."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from facetrain.audit.duplicates import (
    duplicate_groups,
    exact_pairs,
    identity_pairs,
    keep_first,
    merge_pairs,
    near_pairs,
)
from facetrain.audit.eval_sets import EvalSet, open_eval_set
from facetrain.audit.findings import EXCLUDABLE, Findings
from facetrain.audit.label_checks import (
    centres,
    chance_levels,
    eval_matches,
    impostor_ratios,
    merged_identities,
    mislabeled_images,
    nearest_other,
    own_fit,
    photo_cuts,
    split_half_ratios,
    typical_within,
)
from facetrain.audit.report import write_report
from facetrain.audit.source import AuditSource, open_source, scan
from facetrain.config import abs_path
from facetrain.errors import FacetrainError
from facetrain.train.config_checks import Rule, check_rules

__all__ = ["audit"]

log = logging.getLogger(__name__)


def _out_dir(a: DictConfig) -> Path:
    if a.get("out"):
        out = abs_path(a.out)
        if out.exists() and not out.is_dir():
            raise FacetrainError(f"audit.out={out} is a file; give a folder for the audit's files")
        return out
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


_RANGES = {"near_distance": "a thumbnail cosine distance", "near_distance_model": "a thumbnail cosine distance",
           "near_residual": "1 - NCC once aligned"}  # each from 0 to 2
_RULES = {f"audit.{key}": rule for key, rule in {
    "min_images": Rule("integer", "identities with fewer images are marked", low=0),
    "exact_search_limit": Rule("integer", "up to this many images the near search is exact", low=0),
    "merge_threshold": Rule("number", "the cross to own similarity ratio of one person under two names",
                            words=("auto",)),
    "merge_quantile": Rule("number", "auto's share of people split in two that the cut may miss", low=0, high=1),
    "mislabel_margin": Rule("number", "the cosine by which another identity's centre beats an image's own",
                            words=("auto",)),
    "eval_threshold": Rule("number", "the cross to own similarity ratio of an evaluation person", words=("auto",)),
    "outlier_z": Rule("number", "auto's cut, in robust standard deviations above the median", above=0),
    "embedding": Rule("choice", "which features the model checks compare", choices=("backbone", "head")),
    "mirror": Rule("choice", "add the mirrored image's features, or not", choices=("sum", "none")),
    "device": Rule("device", "where the model runs"),
    "batch_size": Rule("integer", "images per model batch", low=1),
    "workers": Rule("integer", "decoding processes, 0 = in this process", low=0),
    "progress": Rule("boolean", "progress bars"),
}.items()}


def _listed(value) -> list:
    """A key that takes one value or a list (`audit.exclude=mislabeled`) as a list."""
    return [value] if isinstance(value, str) else list(value or [])


def _check_settings(cfg: DictConfig) -> list[str]:
    check_rules(cfg, _RULES)
    a = cfg.audit
    for key, what in _RANGES.items():
        try:
            value = float(a[key])
        except (TypeError, ValueError):
            value = float("nan")
        if not 0 <= value <= 2:
            raise FacetrainError(f"audit.{key}={a[key]}: {what} from 0 to 2 is needed (configs/data.yaml has the "
                                 "default)")
    kinds = _listed(a.exclude)
    unknown = [k for k in kinds if k not in EXCLUDABLE]
    if unknown:
        raise FacetrainError(f"audit.exclude: {', '.join(unknown)} unknown; choose from {', '.join(EXCLUDABLE)}")
    return kinds


def _duplicates(f: Findings, a: DictConfig, with_model: bool) -> tuple[np.ndarray, np.ndarray]:
    """Exact groups, and the near candidates ([P, 2] pairs, [P] thumbnail distances): thumbnails within
    `audit.near_distance`, or with a model (whose face check thins them first) within the wider
    `audit.near_distance_model`; each image's nearest over the whole set and every pair within an identity.
    Copies of one exact group are not candidates of each other."""
    ok, n = f.scan["ok"], len(f.names)
    f.exact_groups = duplicate_groups(n, exact_pairs(f.scan["digest"], ok))
    radius = float(a.near_distance_model if with_model else a.near_distance)
    near, dist = merge_pairs(near_pairs(f.scan["thumb"], ok, radius, exact_limit=int(a.exact_search_limit)),
                             identity_pairs(f.scan["thumb"], f.labels, ok, radius))
    group = np.arange(n)
    for g in f.exact_groups:
        group[g] = g[0]
    keep = group[near[:, 0]] != group[near[:, 1]]
    near, dist = near[keep], dist[keep]
    nearest = np.full(n, np.inf)
    np.minimum.at(nearest, near.ravel(), np.repeat(dist, 2))
    f.nearest_thumb = nearest[np.isfinite(nearest)]
    return near, dist


def _near_groups(f: Findings, near: np.ndarray, dist: np.ndarray, feats: np.ndarray | None, source: AuditSource,
                 a: DictConfig) -> None:
    """Keep the near candidates (`_duplicates`) that are copies, and group them. With a model, first drop the
    pairs whose faces differ: a copy's embedding stays at least as close to its source's as a typical photo is to
    the closest other person's centre (the median `nearest_other`); two look-alike photos of different people do
    not (the thumbnails of other people's photos can be as close as a copy's). A stricter floor (a photo to its
    own centre) dropped copies shrunk by a third, which a stronger model tells apart from their source more than a
    weaker one (docs/data.md). Then each pair is aligned (`registration`): a copy matches once its crop and scale
    are undone, another photo of the same person does not."""
    from facetrain.audit.registration import aligned_residuals

    if feats is not None and len(near):
        floor = f.cuts["near_face_floor"]
        step = 1 << 18  # a chunk's two [step, D] gathers stay small whatever the number of pairs
        cosine = np.concatenate([np.einsum("ij,ij->i", feats[near[k:k + step, 0]], feats[near[k:k + step, 1]])
                                 for k in range(0, len(near), step)])
        same = cosine >= floor
        f.notes.append(f"{len(near) - int(same.sum())} thumbnail-near pairs whose embeddings' cosine is below "
                       f"{floor:.3f} (the median cosine of an image to the closest other identity's centre) were "
                       "not counted as near duplicates: different faces")
        near, dist = near[same], dist[same]
    start = time.perf_counter()
    residuals = aligned_residuals(source.image, near, progress=bool(a.progress))
    f.seconds["align"] = time.perf_counter() - start
    cut = float(a.near_residual)
    copies = residuals <= cut
    f.notes.append(f"{len(near) - int(copies.sum())} of {len(near)} thumbnail-near pairs differ once aligned "
                   f"(1 - NCC above {cut:g}): other photos, not copies")
    pairs = [(int(i), int(j)) for i, j in near[copies]]
    f.near_distance = dict(zip(pairs, dist[copies].tolist(), strict=True))
    f.near_residual = dict(zip(pairs, residuals[copies].tolist(), strict=True))
    f.near_groups = duplicate_groups(len(f.names), near[copies])


def _model_checks(f: Findings, source: AuditSource, a: DictConfig, model, eval_sets: list[EvalSet],
                  cache: Path | None) -> np.ndarray:
    """Run the checks that need embeddings; return the training images' embeddings."""
    from facetrain.audit.embeddings import embed

    ok = f.scan["ok"]
    start = time.perf_counter()
    feats = embed(model, source.image, source.keys, cache, "training images", int(a.workers), int(a.batch_size),
                  bool(a.progress))
    f.seconds["embed"] = time.perf_counter() - start
    c, sums, counts = centres(feats[ok], f.labels[ok], len(f.classes))
    z = float(a.outlier_z)
    prior = typical_within(sums, counts)
    f.cuts["near_face_floor"] = float(np.nanmedian(nearest_other(feats, f.labels, ok, c)))  # for _near_groups
    null = split_half_ratios(feats, f.labels, ok, prior)  # one person under two names, as this model sees it
    q = float(a.merge_quantile)
    f.merged, f.merge_ratio, f.cuts["merge_threshold"] = merged_identities(c, sums, counts, a.merge_threshold,
                                                                           null, q, prior)
    f.mislabeled, f.mislabel_gap, f.cuts["mislabel_margin"] = mislabeled_images(feats, f.labels, ok, sums, counts,
                                                                                c, a.mislabel_margin, z)
    if eval_sets:
        paired = {i for a_, b_, _, _ in f.merged for i in (a_, b_)}
        auto = str(a.eval_threshold) == "auto"
        impostors = impostor_ratios(c, sums, counts, feats, f.labels, ok, prior, paired) if auto else np.zeros((1, 0))
        cuts = photo_cuts(a.eval_threshold, null, q, impostors)
        f.cuts["eval_threshold"] = [round(float(x), 4) for x in cuts]  # by the person's photos: 1, 2, ..., and more
    for es in eval_sets:
        start = time.perf_counter()
        e_feats = embed(model, es.image, es.keys, cache, f"eval set {es.name}", int(a.workers), int(a.batch_size),
                        bool(a.progress))
        f.seconds["embed"] += time.perf_counter() - start
        e_c, e_sums, e_counts = centres(e_feats, es.labels, len(es.people))
        matches = eval_matches(c, sums, counts, e_c, e_sums, e_counts, cuts, prior)
        photos = np.array([e_counts[p] for _, p, _, _ in matches], np.int64)
        chance = chance_levels(impostors, [r for _, _, r, _ in matches], photos)
        for (t, p, r, s), n, ch in zip(matches, photos, chance, strict=True):
            f.eval_overlap.append({"identity": f.classes[t], "set": es.name, "person": es.people[p], "ratio": r,
                                   "cosine": s, "photos": int(n), "chance": float(ch), "by": "embedding"})
    return feats


def _keep_own_copies(f: Findings, fit: np.ndarray) -> None:
    """Put the copy to keep first in each duplicate group: the one under the photo's own identity, judged by
    `fit` (each image's cosine to its own identity's centre: the model's embeddings, or the colour thumbnails)."""
    f.exact_groups = keep_first(f.exact_groups, f.labels, fit)
    f.near_groups = keep_first(f.near_groups, f.labels, fit)


def _name_overlap(f: Findings, eval_sets: list[EvalSet]) -> None:
    from facetrain.data.selection.exclusion import normalize_name

    found = {(r["identity"], r["set"]) for r in f.eval_overlap}
    for es in eval_sets:
        people = {normalize_name(p): p for p in es.people}
        for c in f.classes:
            if normalize_name(c) in people and (c, es.name) not in found:
                f.eval_overlap.append({"identity": c, "set": es.name, "person": people[normalize_name(c)],
                                       "ratio": None, "cosine": None, "photos": None, "chance": None, "by": "name"})


def _quality(source: AuditSource) -> dict | None:
    from facetrain.data.synth.quality import quality_path, read_quality

    root = getattr(source.dataset, "root", None)
    if root is None or not quality_path(root).is_file():
        return None
    table = read_quality(root)
    return {n: table[n] for n in source.names if n in table} or None


def audit(cfg: DictConfig) -> dict:
    """Audit the training source `cfg.data` (see configs/data.yaml's audit: section); returns the summary."""
    a = cfg.audit
    kinds = _check_settings(cfg)
    out = _out_dir(a)
    source = open_source(cfg.data)  # an empty or missing source: one line, nothing written
    eval_sets = [open_eval_set(str(e), dict(cfg.data.get("eval_sets") or {})) for e in _listed(a.eval)]
    cache = abs_path(a.cache_dir) if a.get("cache_dir") else None
    start = time.perf_counter()
    result = scan(source, cache, int(a.workers), bool(a.progress))
    seconds = {"decode": time.perf_counter() - start}
    ok = result["ok"]
    if not ok.any():
        raise FacetrainError(f"none of the {len(ok)} images of {source.dataset.root} can be decoded (first: "
                             f"{source.names[0]}: {result['reason'][0]}); check data.root and the files")
    model = None
    if cfg.get("model"):
        from facetrain.audit.embeddings import open_model
        from facetrain.run.device import pick_device

        probe = source.image(int(np.flatnonzero(ok)[0]))
        model = open_model(cfg.model, abs_path(cfg.paths.runs), pick_device(str(a.device)), str(a.mirror),
                           str(a.embedding), probe)
    f = Findings(source.names, source.labels, source.classes, result,
                 counts=np.bincount(source.labels, minlength=len(source.classes)), quality=_quality(source),
                 seconds=seconds)
    start = time.perf_counter()
    near, dist = _duplicates(f, a, model is not None)
    f.seconds["duplicates"] = time.perf_counter() - start
    feats = None
    if model is not None:
        start = time.perf_counter()
        feats = _model_checks(f, source, a, model, eval_sets, cache)
        f.seconds["model_checks"] = time.perf_counter() - start - f.seconds["embed"]
    else:
        f.notes.append("no model=: identities under two names, mislabeled images and evaluation overlap by face "
                       "need one (model=RUN); evaluation overlap was checked by name only")
    fit = own_fit(f.scan["thumb"] if feats is None else feats, f.labels, f.scan["ok"])
    _near_groups(f, near, dist, feats, source, a)
    _keep_own_copies(f, fit)
    _name_overlap(f, eval_sets)
    settings = {"source": str(source.dataset.root), "model": str(model.path) if model else None,
                "eval": [str(e) for e in _listed(a.eval)], "min_images": int(a.min_images),
                "near_distance": float(a.near_distance_model if model else a.near_distance),
                "near_residual": float(a.near_residual), "outlier_z": float(a.outlier_z),
                "merge_quantile": float(a.merge_quantile),
                **{k: str(a[k]) for k in ("merge_threshold", "mislabel_margin", "eval_threshold")}, "cuts": f.cuts,
                "exclude": kinds, "out": str(out), "seconds": {k: round(v, 2) for k, v in f.seconds.items()}}
    summary = write_report(f, out, settings)
    print(f"audit of {source.dataset.root}: {summary['images']} images, {summary['unreadable']} unreadable, "
          f"{summary['exact_duplicate_images']} exact and {summary['near_duplicate_images']} near duplicates, "
          f"{summary['merged_identity_pairs']} identity pairs under two names, {summary['mislabeled_images']} "
          f"mislabeled, {summary['eval_overlap_identities']} identities in evaluation sets -> {out}/audit.md; "
          f"train without them: data.exclude={out}/exclude.tsv")
    return summary
