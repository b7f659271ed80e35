"""`facetrain eval ijbc` / `ijbb`: IJB-C and IJB-B 1:1 verification (TAR@FAR, ROC) and 1:N identification.

One code path for both (configs/protocol/ijbc.yaml, ijbb.yaml): faces of `loose_crop/` aligned by their 5
landmarks, template features pooled per media and per template (optionally weighted by the detector score,
as insightface's `use_detector_score`), cosine scores of the pairs of `template_pair_label.txt`. 1:N runs
when the gallery and probe CSVs are present: each gallery on its own (open set: probes of the other
gallery's subjects are the non-mated ones), then the mean over galleries.

Also here, the parser of the IJB-B / IJB-C meta files of insightface's evaluation layout (`<root>/meta/`, `<root>/loose_crop/`).

- `<p>_face_tid_mid.txt`: `image_name template_id media_id` per face (one line per loose crop).
- `<p>_template_pair_label.txt`: `template_id1 template_id2 label` per 1:1 comparison (1 = same subject).
- `<p>_name_5pts_score.txt`: `image_name x1 y1 ... x5 y5 detector_score` (left eye, right eye, nose tip,
  left and right mouth corners as seen in the image; the detector's face score).
- `<p>_1N_gallery_G1.csv`, `_G2.csv` (IJB-B: `_S1`, `_S2`) and `<p>_1N_probe_mixed.csv`: NIST's CSVs with a
  header; only `TEMPLATE_ID` and `SUBJECT_ID` are read (the faces of a template come from face_tid_mid).
Fields of the text files are separated by spaces or tabs; empty lines are skipped; a malformed line stops
with its file and line number.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from facetrain.config import abs_path
from facetrain.errors import FacetrainError
from facetrain.eval.features.source import ImageSet, gather_features
from facetrain.eval.metrics.identification import cmc, open_set, split_probes
from facetrain.eval.metrics.roc import roc_auc, tar_at_far
from facetrain.eval.metrics.templates import PooledTemplates, pool_templates
from facetrain.eval.plots import roc_from_scores
from facetrain.eval.protocols.ijba import field_int
from facetrain.eval.publish import publish
from facetrain.eval.tables import format_table, pct

__all__ = ["IjbFaces", "IjbPairs", "IjbPoints", "IjbProtocol", "evaluate_ijb", "ijb_identification", "ijb_templates", "ijb_verification", "load_ijb", "read_face_tid_mid", "read_five_points", "read_pair_labels", "read_template_subjects", "template_pair_scores"]


def _require(path: Path) -> None:
    if not path.is_file():
        raise FacetrainError(f"IJB protocol file {path} does not exist; set data.root to the IJB-B/C folder "
                             "(with meta/ and loose_crop/, as insightface's evaluation uses)")


def _lines(path: Path, layout: str, count: int) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-empty line, each with exactly `count` fields."""
    _require(path)
    with path.open() as fh:
        for number, line in enumerate(fh, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != count:
                raise FacetrainError(f"{path}:{number}: expected `{layout}` ({count} fields), got {len(fields)}")
            yield number, fields


def _float(value: str, path: Path, line: int, column: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not np.isfinite(number):
        raise FacetrainError(f"{path}:{line}: {column} {value!r} is not a finite number")
    return number


@dataclass(frozen=True)
class IjbFaces:
    """face_tid_mid: one entry per face of a template."""

    path: Path
    names: list[str]  # image file under loose_crop/
    template: np.ndarray  # int [R]
    media: np.ndarray  # int [R]
    line: np.ndarray  # int [R]


def read_face_tid_mid(path: Path) -> IjbFaces:
    names, template, media, lines = [], [], [], []
    for number, (name, tid, mid) in _lines(path, "image_name template_id media_id", 3):
        names.append(name)
        template.append(field_int(tid, path, number, "template_id"))
        media.append(field_int(mid, path, number, "media_id"))
        lines.append(number)
    if not names:
        raise FacetrainError(f"{path} lists no faces; it should hold `image_name template_id media_id` lines")
    return IjbFaces(path, names, np.array(template), np.array(media), np.array(lines))


@dataclass(frozen=True)
class IjbPairs:
    path: Path
    pairs: np.ndarray  # int [P, 2] template ids
    labels: np.ndarray  # bool [P], True = same subject
    line: np.ndarray  # int [P]


def read_pair_labels(path: Path) -> IjbPairs:
    pairs, labels, lines = [], [], []
    for number, (a, b, label) in _lines(path, "template_id1 template_id2 label", 3):
        pairs.append((field_int(a, path, number, "template_id1"), field_int(b, path, number, "template_id2")))
        value = field_int(label, path, number, "label")
        if value not in (0, 1):
            raise FacetrainError(f"{path}:{number}: label {label!r} must be 1 (same subject) or 0 (different)")
        labels.append(value == 1)
        lines.append(number)
    if not pairs:
        raise FacetrainError(f"{path} lists no pairs; it should hold `template_id1 template_id2 label` lines")
    return IjbPairs(path, np.array(pairs, dtype=int).reshape(-1, 2), np.array(labels, dtype=bool), np.array(lines))


@dataclass(frozen=True)
class IjbPoints:
    """name_5pts_score: landmarks and detector score per image name."""

    path: Path
    index: dict[str, int]  # image name -> row
    points: np.ndarray  # float [N, 5, 2]
    score: np.ndarray  # float [N]
    line: np.ndarray  # int [N]


def read_five_points(path: Path) -> IjbPoints:
    index, points, scores, lines = {}, [], [], []
    for number, fields in _lines(path, "image_name x1 y1 ... x5 y5 detector_score", 12):
        name = fields[0]
        if name in index:
            raise FacetrainError(f"{path}:{number}: {name} is listed again (first on line {lines[index[name]]})")
        coords = np.array([_float(v, path, number, "coordinate") for v in fields[1:11]]).reshape(5, 2)
        if np.ptp(coords, axis=0).max() <= 0:
            raise FacetrainError(f"{path}:{number}: the 5 landmarks of {name} all coincide; fix or remove the line")
        index[name] = len(points)
        points.append(coords)
        scores.append(_float(fields[11], path, number, "detector_score"))
        lines.append(number)
    return IjbPoints(path, index, np.array(points).reshape(-1, 5, 2), np.array(scores), np.array(lines))


def read_template_subjects(path: Path) -> dict[int, int]:
    """A 1:N gallery / probe CSV: template id -> subject id (the CSV has one row per face of a template)."""
    _require(path)
    subjects: dict[int, int] = {}
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip().upper() for h in next(reader, [])]
        if "TEMPLATE_ID" not in header or "SUBJECT_ID" not in header:
            raise FacetrainError(f"{path}:1: the header lacks TEMPLATE_ID or SUBJECT_ID; expected NIST's "
                                 "`TEMPLATE_ID,SUBJECT_ID,FILENAME,...` columns")
        t_col, s_col = header.index("TEMPLATE_ID"), header.index("SUBJECT_ID")
        for number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) <= max(t_col, s_col):
                raise FacetrainError(f"{path}:{number}: {len(row)} fields, the header has {len(header)}")
            tid = field_int(row[t_col], path, number, "TEMPLATE_ID")
            sid = field_int(row[s_col], path, number, "SUBJECT_ID")
            if subjects.setdefault(tid, sid) != sid:
                raise FacetrainError(f"{path}:{number}: template {tid} has subject {sid} here and {subjects[tid]} "
                                     "before; a template belongs to one subject")
    if not subjects:
        raise FacetrainError(f"{path} lists no templates")
    return subjects


log = logging.getLogger(__name__)

BLOCK = 1 << 16  # pairs scored at a time (2 x 256 MiB at D = 512): IJB-C's 15.7M pairs never build [P, D]


@dataclass(frozen=True)
class IjbProtocol:
    faces: IjbFaces
    pairs: IjbPairs
    points: IjbPoints
    galleries: dict[str, dict[int, int]]  # gallery name (g1, s1, ...) -> template -> subject; empty = no 1:N
    probes: dict[int, int]


def _title(p: DictConfig) -> str:
    return str(p.name).upper().replace("IJB", "IJB-")


def load_ijb(p: DictConfig) -> IjbProtocol:
    """Read the meta files; the 1:N CSVs only when all are present (one printed line says when they are not)."""
    meta = abs_path(p.meta)
    faces = read_face_tid_mid(meta / f"{p.prefix}_face_tid_mid.txt")
    pairs = read_pair_labels(meta / f"{p.prefix}_template_pair_label.txt")
    points = read_five_points(meta / f"{p.prefix}_name_5pts_score.txt")
    files = [meta / str(g) for g in p.galleries] + [meta / str(p.probes)]
    absent = [f for f in files if not f.is_file()]
    if absent:
        print(f"{_title(p)} 1:N identification skipped: {absent[0]} not found (1:1 verification only)")
        return IjbProtocol(faces, pairs, points, {}, {})
    galleries = {f.stem.rsplit("_", 1)[-1].lower(): read_template_subjects(f) for f in files[:-1]}
    return IjbProtocol(faces, pairs, points, galleries, read_template_subjects(files[-1]))


def _image_set(p: DictConfig, ijb: IjbProtocol, allow_missing: bool) -> ImageSet:
    """Every face image once, with its landmarks; an image without landmarks is an error (or dropped)."""
    first: dict[str, int] = {}  # image name -> the face_tid_mid line that first names it
    for n, line in zip(ijb.faces.names, ijb.faces.line.tolist(), strict=True):
        first.setdefault(n, line)
    lacking = [n for n in first if n not in ijb.points.index]
    if lacking:
        where = f"{ijb.faces.path}:{first[lacking[0]]}"
        if not allow_missing:
            raise FacetrainError(f"{where}: {len(lacking)} image(s) have no landmarks in {ijb.points.path} (first: "
                                 f"{lacking[0]}); use the matching 5pts file, or pass allow_missing=true to drop them")
        log.warning("allow_missing: %d image(s) have no landmarks (first: %s); dropped", len(lacking), lacking[0])
    names = [n for n in first if n in ijb.points.index]
    return ImageSet(abs_path(p.images), names, origins={n: f"{ijb.faces.path}:{first[n]}" for n in names},
                    landmarks=[ijb.points.points[ijb.points.index[n]] for n in names])


def ijb_templates(faces: IjbFaces, feats: dict[str, np.ndarray], points: IjbPoints, p: DictConfig
                  ) -> tuple[PooledTemplates, int]:
    """Pool the faces that have features into templates; also the number of templates left without a face."""
    usable = np.array([n in feats for n in faces.names])
    if not usable.any():
        raise FacetrainError(f"{faces.path}: no face has features; check data.root / the features file")
    idx = np.flatnonzero(usable)
    names = [faces.names[i] for i in idx]
    weights = np.array([points.score[points.index[n]] for n in names]) if p.detector_score else None
    pooled = pool_templates(np.stack([feats[n] for n in names]), faces.template[idx], faces.media[idx],
                            str(p.pooling), bool(p.normalize_images), weights)
    return pooled, len(set(faces.template.tolist())) - len(pooled.ids)


def template_pair_scores(features: np.ndarray, a: np.ndarray, b: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Cosine of unit template features for the pairs (a[i], b[i]), block by block."""
    out = np.empty(len(a))
    for s in range(0, len(a), block):
        out[s:s + block] = np.einsum("pd,pd->p", features[a[s:s + block]], features[b[s:s + block]])
    return out


def _unknown(ids, known: set[int], where: str, what: str) -> None:
    missing = [t for t in ids if t not in known]
    if missing:
        raise FacetrainError(f"{where}: {what} template {missing[0]} has no face in face_tid_mid ({len(missing)} such "
                             "template(s)); the meta files do not belong together")


def ijb_verification(pooled: PooledTemplates, pairs: IjbPairs, listed: set[int], p: DictConfig
                     ) -> tuple[dict[str, float], tuple[np.ndarray, np.ndarray]]:
    """1:1 numbers (unprefixed keys) and the scored (labels, scores); pairs of dropped templates are counted."""
    bad = ~np.isin(pairs.pairs, list(listed)).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        _unknown(pairs.pairs[i].tolist(), listed, f"{pairs.path}:{pairs.line[i]}", "1:1")
    ids = np.array(pooled.ids)
    order = np.argsort(ids)
    at = np.minimum(np.searchsorted(ids[order], pairs.pairs), len(ids) - 1)  # vectorized: 15.7M pairs
    ok = (ids[order][at] == pairs.pairs).all(axis=1)
    rows = order[at[ok]]
    scores, labels = template_pair_scores(pooled.features, rows[:, 0], rows[:, 1]), pairs.labels[ok]
    out = {f"tar@far={far:g}": tar_at_far(labels, scores, float(far), str(p.far_readoff)).tar for far in p.fars}
    out |= {"auc": roc_auc(labels, scores), "genuine": float(labels.sum()), "impostor": float((~labels).sum()),
            "pairs_dropped": float((~ok).sum())}
    return out, (labels, scores)


def ijb_identification(pooled: PooledTemplates, galleries: dict[str, dict[int, int]], probes: dict[int, int],
                       p: DictConfig) -> dict[str, float]:
    """Rank-k and TPIR@FPIR per gallery (`g1/rank1`, ...) and their mean over galleries (`rank1`, ...)."""
    index = {t: i for i, t in enumerate(pooled.ids)}
    probe_ids = [t for t in probes if t in index]
    probe_feats = pooled.features[[index[t] for t in probe_ids]]
    out: dict[str, float] = {}
    for name, gallery in galleries.items():
        ids = [t for t in gallery if t in index]
        found = split_probes(probe_feats @ pooled.features[[index[t] for t in ids]].T,
                             np.array([probes[t] for t in probe_ids]), np.array([gallery[t] for t in ids]))
        out |= {f"{name}/rank{k}": v for k, v in cmc(found, [int(r) for r in p.ranks]).items()}
        out |= {f"{name}/tpir@fpir={f:g}": open_set(found, float(f), rank=1).tpir for f in p.fpirs}
        out |= {f"{name}/mated_probes": float(len(found.mate_rank)),
                f"{name}/nonmated_probes": float(len(found.nonmated_max))}
    heads = [f"rank{int(r)}" for r in p.ranks] + [f"tpir@fpir={f:g}" for f in p.fpirs]
    return out | {h: float(np.mean([out[f"{g}/{h}"] for g in galleries])) for h in heads}


def _table(m: dict[str, float], p: DictConfig, galleries: list[str]) -> str:
    n = str(p.name)
    text = (f"{_title(p)} 1:1 verification: {int(m[f'{n}/genuine'])} genuine, {int(m[f'{n}/impostor'])} impostor "
            f"pairs of {int(m[f'{n}/templates'])} templates, TAR % at FAR (read-off: {p.far_readoff})\n"
            + format_table(["method", *[f"FAR={f:g}" for f in p.fars], "AUC %"],
                           [["this model", *[pct(m[f"{n}/tar@far={f:g}"]) for f in p.fars], pct(m[f"{n}/auc"])]]))
    if galleries:
        heads = [f"rank{int(r)}" for r in p.ranks] + [f"tpir@fpir={f:g}" for f in p.fpirs]
        rows = [[g.upper(), *[pct(m[f"{n}/{g}/{h}"]) for h in heads]] for g in galleries]
        rows.append(["mean", *[pct(m[f"{n}/{h}"]) for h in heads]])
        text += (f"\n\n{_title(p)} 1:N identification (mixed probes, each gallery open-set), %\n"
                 + format_table(["gallery", *[f"Rank-{int(r)}" for r in p.ranks],
                                 *[f"TPIR@FPIR={f:g}" for f in p.fpirs]], rows))
    return text


def evaluate_ijb(cfg: DictConfig) -> dict[str, float]:
    """Score a model (or a features file of loose-crop images) on IJB-C or IJB-B; print the tables; write metrics."""
    p, name = cfg.protocol, str(cfg.protocol.name)
    if cfg.data.root is None:
        raise FacetrainError(f"set data.root=... to your {_title(p)} folder (with meta/ and loose_crop/, as "
                             "insightface's evaluation uses)")
    ijb = load_ijb(p)
    listed = set(ijb.faces.template.tolist())
    for gallery, f in zip(ijb.galleries.values(), p.galleries, strict=False):
        _unknown(gallery, listed, str(abs_path(p.meta) / str(f)), "gallery")
    _unknown(ijb.probes, listed, str(abs_path(p.meta) / str(p.probes)), "probe")
    source = gather_features(cfg, _image_set(p, ijb, bool(cfg.allow_missing)), name)
    feats = dict(zip(source.features.paths, source.features.features, strict=True))
    pooled, dropped = ijb_templates(ijb.faces, feats, ijb.points, p)
    numbers, roc = ijb_verification(pooled, ijb.pairs, listed, p)
    if ijb.galleries:
        numbers |= ijb_identification(pooled, ijb.galleries, ijb.probes, p)
    numbers |= {"templates": float(len(pooled.ids)), "templates_dropped": float(dropped),
                "faces": float(len(source.features.paths))}
    m = {f"{name}/{k}": float(v) for k, v in numbers.items()}
    return publish(cfg, name, m, _table(m, p, list(ijb.galleries)), {"1:1": roc_from_scores(*roc)}, source,
                   calibration={name: roc}, pairs_of="template")
