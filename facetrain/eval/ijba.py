"""`facetrain eval ijba`: IJB-A 1:1 verification (TAR@FAR) and 1:N identification (Rank-k, TPIR@FPIR) over splits.

Numbers are formatted as Ranjan et al. 2017, table 6: mean(std) over the splits.
"""

from __future__ import annotations

import logging

import numpy as np
from omegaconf import DictConfig

from facetrain.config import abs_path
from facetrain.errors import FacetrainError
from facetrain.eval.feature_source import ImageSet, gather_features
from facetrain.eval.identification import cmc, open_set, split_probes
from facetrain.eval.ijba_protocol import IjbaSplit, TemplateRows, box_key, face_keys, find_splits, load_split
from facetrain.eval.norm_sets import norm_set_pairs, norm_sets
from facetrain.eval.plots import roc_from_scores
from facetrain.eval.publish import publish
from facetrain.eval.report import format_table
from facetrain.eval.roc_metrics import tar_at_far
from facetrain.eval.templates import PooledTemplates, pool_templates

__all__ = ["evaluate_ijba", "ijba_split_metrics"]

log = logging.getLogger(__name__)


def _row_keys(rows: TemplateRows, keys: dict) -> list[str]:
    return [keys[(f, box_key(b))] for f, b in zip(rows.file, rows.box, strict=True)]


def _templates(rows: TemplateRows, keys: dict, feats: dict[str, np.ndarray], cfg: DictConfig, counts: dict
               ) -> tuple[PooledTemplates, dict[int, int]]:
    """Pool the usable faces of each template; a template with none is an error, or dropped and counted."""
    names = _row_keys(rows, keys)
    usable = np.array([n in feats for n in names])
    empty = sorted(set(rows.template.tolist()) - set(rows.template[usable].tolist()))
    if empty:
        line = int(rows.line[np.flatnonzero(rows.template == empty[0])[0]])
        if not cfg.allow_missing:
            raise FacetrainError(f"{rows.path}:{line}: template {empty[0]} has no usable face ({len(empty)} such "
                                 "templates); fix the images / boxes, or pass allow_missing=true to drop them")
        counts["templates_dropped"] += len(empty)
    idx = np.flatnonzero(usable)
    if not idx.size:
        raise FacetrainError(f"{rows.path}: no template has a usable face; check data.root / the features file")
    pooled = pool_templates(np.stack([feats[names[i]] for i in idx]), rows.template[idx], rows.media[idx],
                            str(cfg.protocol.pooling), bool(cfg.protocol.normalize_images))
    return pooled, rows.subjects()


def ijba_split_metrics(split: IjbaSplit, keys: dict, feats: dict[str, np.ndarray], cfg: DictConfig, counts: dict
                       ) -> tuple[dict[str, float], tuple[np.ndarray, np.ndarray]]:
    """One split's numbers (unprefixed keys) and its 1:1 (labels, scores)."""
    p, out = cfg.protocol, {}
    verify, subject = _templates(split.verify, keys, feats, cfg, counts)
    index = {t: i for i, t in enumerate(verify.ids)}
    ok = np.array([a in index and b in index for a, b in split.comparisons])
    counts["pairs_dropped"] += int((~ok).sum())
    pairs = split.comparisons[ok]
    a, b = np.array([index[t] for t in pairs[:, 0]]), np.array([index[t] for t in pairs[:, 1]])
    scores = np.einsum("pd,pd->p", verify.features[a], verify.features[b])
    labels = np.array([subject[x] == subject[y] for x, y in pairs])
    for far in p.fars:
        out[f"tar@far={far:g}"] = tar_at_far(labels, scores, float(far), str(p.far_readoff)).tar
    out |= {"genuine": float(labels.sum()), "impostor": float((~labels).sum())}
    gallery, g_subject = _templates(split.gallery, keys, feats, cfg, counts)
    probe, p_subject = _templates(split.probe, keys, feats, cfg, counts)
    probes = split_probes(probe.features @ gallery.features.T, np.array([p_subject[t] for t in probe.ids]),
                          np.array([g_subject[t] for t in gallery.ids]))
    out |= {f"rank{k}": v for k, v in cmc(probes, [int(r) for r in p.ranks]).items()}
    for fpir in p.fpirs:
        out[f"tpir@fpir={fpir:g}"] = open_set(probes, float(fpir), rank=1).tpir
    out |= {"mated_probes": float(len(probes.mate_rank)), "nonmated_probes": float(len(probes.nonmated_max))}
    n_sets = int(cfg.analysis.norm_sets)
    if n_sets:
        sets = norm_sets(verify.norms, n_sets)
        for key, mask in norm_set_pairs(sets[a], sets[b], n_sets).items():
            for far in p.fars:
                fine = mask.any() and labels[mask].any() and not labels[mask].all()
                out[f"norm_sets/{key}/tar@far={far:g}"] = (tar_at_far(labels[mask], scores[mask], float(far),
                                                                      str(p.far_readoff)).tar if fine else np.nan)
    return out, (labels, scores)


def _aggregate(per_split: list[dict[str, float]], ddof: int) -> dict[str, float]:
    out = {}
    for key in per_split[0]:
        values = np.array([m[key] for m in per_split], dtype=float)
        values = values[np.isfinite(values)]  # a norm-set pair can be empty in a split
        out[f"ijba/{key}_mean"] = float(values.mean()) if len(values) else float("nan")
        out[f"ijba/{key}_std"] = float(values.std(ddof=ddof)) if len(values) > ddof else float("nan")
    return out


def _cell(m: dict, key: str) -> str:
    return f"{m[f'ijba/{key}_mean']:.3f}({m[f'ijba/{key}_std']:.3f})"


def _table(m: dict, cfg: DictConfig, splits: int) -> str:
    p = cfg.protocol
    heads = [f"TAR@FAR={f:g}" for f in p.fars] + [f"FPIR={f:g}" for f in p.fpirs] + [f"Rank={r}" for r in p.ranks]
    cells = ([_cell(m, f"tar@far={f:g}") for f in p.fars] + [_cell(m, f"tpir@fpir={f:g}") for f in p.fpirs]
             + [_cell(m, f"rank{r}") for r in p.ranks])
    text = (f"IJB-A, {splits} split(s), mean(std, ddof={int(p.std_ddof)}): verification TAR@FAR | "
            "identification TPIR@FPIR, Rank-k\n" + format_table(["method", *heads], [["this model", *cells]]))
    n_sets = int(cfg.analysis.norm_sets)
    if n_sets:
        keys = sorted({k.split("/")[2] for k in m if k.startswith("ijba/norm_sets/")})
        text += "\n\n" + format_table(["norm sets", *[f"TAR@FAR={f:g}" for f in p.fars]], [
            [k, *[_cell(m, f"norm_sets/{k}/tar@far={f:g}") for f in p.fars]] for k in keys])
    return text


def evaluate_ijba(cfg: DictConfig) -> dict[str, float]:
    """Score a model (or a features file of faces) on IJB-A; print table 6's columns; write metrics.json."""
    p = cfg.protocol
    sets_11, sets_1n = abs_path(p.sets_11), abs_path(p.sets_1n)
    numbers = find_splits(sets_11, list(p.splits) if p.splits else None)
    if len(numbers) != 10:
        log.warning("IJB-A has 10 splits; scoring %d (%s)", len(numbers), numbers)
    splits = [load_split(sets_11, sets_1n, n) for n in numbers]
    tables = [t for s in splits for t in (s.verify, s.gallery, s.probe)]
    keys = face_keys(tables)
    faces: dict[str, tuple[str, tuple, str]] = {}
    for t in tables:
        for f, b, line in zip(t.file, t.box, t.line, strict=True):
            faces.setdefault(keys[(f, box_key(b))], (f, tuple(b.tolist()), f"{t.path}:{line}"))
    names = sorted(faces)
    images = ImageSet(abs_path(p.images), names, [faces[n][0] for n in names], [faces[n][1] for n in names],
                      {n: faces[n][2] for n in names})
    source = gather_features(cfg, images, "ijba")
    feats = dict(zip(source.features.paths, source.features.features, strict=True))
    counts = {"templates_dropped": 0, "pairs_dropped": 0}
    results = [ijba_split_metrics(s, keys, feats, cfg, counts) for s in splits]
    m = _aggregate([r[0] for r in results], int(p.std_ddof))
    m |= {"ijba/splits": float(len(splits)), "ijba/faces": float(len(names)),
          "ijba/templates_dropped": float(counts["templates_dropped"]), "ijba/pairs_dropped": float(counts["pairs_dropped"])}
    curves = {f"split {s.number}": roc_from_scores(*r[1]) for s, r in zip(splits, results, strict=True)}
    return publish(cfg, "ijba", m, _table(m, cfg, len(splits)), curves, source)
