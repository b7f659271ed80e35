"""`facetrain eval ijba`: IJB-A 1:1 verification (TAR@FAR) and 1:N identification (Rank-k, TPIR@FPIR) over splits.

Numbers are formatted as Ranjan et al. 2017, table 6: mean(std) over the splits. calibration.json gains set
`ijba`: the thresholds over the splits' template pairs pooled, each distinct pair once (`pairs_of: template`).

Also here, the reader of IJB-A's protocol CSVs (CRLF, a header, empty fields for missing annotation) into templates and pairs.

Per split N: `IJB-A_11_sets/splitN/verify_metadata_N.csv` + `verify_comparisons_N.csv` (no header) for 1:1,
`IJB-A_1N_sets/splitN/search_gallery_N.csv` + `search_probe_N.csv` for 1:N.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from facetrain.config import abs_path
from facetrain.errors import FacetrainError
from facetrain.eval.calibrate import ScoredPairs
from facetrain.eval.features.source import ImageSet, gather_features
from facetrain.eval.metrics.identification import cmc, open_set, split_probes
from facetrain.eval.metrics.norm_sets import norm_set_pairs, norm_sets
from facetrain.eval.metrics.roc import tar_at_far
from facetrain.eval.metrics.templates import PooledTemplates, pool_templates
from facetrain.eval.plots import roc_from_scores
from facetrain.eval.publish import publish
from facetrain.eval.tables import format_table

__all__ = ["IjbaSplit", "TemplateRows", "box_key", "evaluate_ijba", "face_keys", "field_int", "find_splits", "ijba_split_metrics", "load_split", "pooled_calibration_pairs", "read_comparisons", "read_templates"]


NEEDED = ("TEMPLATE_ID", "SUBJECT_ID", "FILE", "MEDIA_ID", "FACE_X", "FACE_Y", "FACE_WIDTH", "FACE_HEIGHT")


@dataclass(frozen=True)
class TemplateRows:
    """One entry per CSV row: a face of a template."""

    path: Path
    template: np.ndarray  # int [R]
    subject: np.ndarray  # int [R]
    file: list[str]  # relative to the images folder: img/<MEDIA_ID>.jpg or frame/<MEDIA_ID>_<frame>.png
    media: np.ndarray  # int [R]
    box: np.ndarray  # float [R, 4] (x, y, w, h); NaN where the CSV leaves it empty
    line: np.ndarray  # int [R] line number in the CSV

    def subjects(self) -> dict[int, int]:
        """Template id -> subject id."""
        return dict(zip(self.template.tolist(), self.subject.tolist(), strict=True))


def field_int(value: str, path: Path, line: int, column: str) -> int:
    """An integer field of a protocol file, or one line naming the file, line, column and value."""
    try:
        return int(value)
    except ValueError:
        raise FacetrainError(f"{path}:{line}: {column} {value!r} is not an integer") from None


def _float(value: str, path: Path, line: int, column: str) -> float:
    if value.strip() == "":
        return float("nan")
    try:
        return float(value)
    except ValueError:
        raise FacetrainError(f"{path}:{line}: {column} {value!r} is not a number") from None


def read_templates(path: Path) -> TemplateRows:
    """A metadata / gallery / probe / train CSV."""
    if not path.is_file():
        raise FacetrainError(f"IJB-A protocol file {path} does not exist; set data.root (or protocol.sets_11 / "
                             "protocol.sets_1n) to your IJB-A folder")
    with path.open(newline="") as fh:  # newline="" lets csv handle the CRLF line endings
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        lacking = [c for c in NEEDED if c not in header]
        if lacking:
            raise FacetrainError(f"{path}:1: the header lacks {', '.join(lacking)}; expected IJB-A's "
                                 f"`{','.join(NEEDED[:4])},...` columns")
        col = {c: header.index(c) for c in NEEDED}
        cols: dict[str, list] = {c: [] for c in (*NEEDED, "line")}
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise FacetrainError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
            for c in ("TEMPLATE_ID", "SUBJECT_ID", "MEDIA_ID"):
                cols[c].append(field_int(row[col[c]], path, line, c))
            for c in ("FACE_X", "FACE_Y", "FACE_WIDTH", "FACE_HEIGHT"):
                cols[c].append(_float(row[col[c]], path, line, c))
            cols["FILE"].append(row[col["FILE"]].strip())
            cols["line"].append(line)
    box = np.array([cols["FACE_X"], cols["FACE_Y"], cols["FACE_WIDTH"], cols["FACE_HEIGHT"]], dtype=float).T
    return TemplateRows(path, np.array(cols["TEMPLATE_ID"]), np.array(cols["SUBJECT_ID"]), cols["FILE"],
                        np.array(cols["MEDIA_ID"]), box.reshape(-1, 4), np.array(cols["line"]))


def read_comparisons(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """verify_comparisons_N.csv: `templateA,templateB` per line, no header. Returns ([P, 2] ids, line numbers)."""
    if not path.is_file():
        raise FacetrainError(f"IJB-A protocol file {path} does not exist")
    pairs, lines = [], []
    with path.open(newline="") as fh:
        for line, row in enumerate(csv.reader(fh), start=1):
            if not row:
                continue
            if len(row) != 2:
                raise FacetrainError(f"{path}:{line}: expected `templateA,templateB`, got {','.join(row)!r}")
            pairs.append([field_int(row[0], path, line, "template id"), field_int(row[1], path, line, "template id")])
            lines.append(line)
    return np.array(pairs, dtype=int).reshape(-1, 2), np.array(lines)


@dataclass(frozen=True)
class IjbaSplit:
    number: int
    verify: TemplateRows
    comparisons: np.ndarray  # [P, 2] template ids
    comparison_lines: np.ndarray
    gallery: TemplateRows
    probe: TemplateRows


def find_splits(sets_11: Path, wanted: list[int] | None) -> list[int]:
    """The split numbers to score: `wanted`, or every `splitN` folder present."""
    if wanted:
        return sorted(int(n) for n in wanted)
    found = sorted(int(p.name[5:]) for p in sets_11.glob("split*") if p.name[5:].isdigit())
    if not found:
        raise FacetrainError(f"no split folders in {sets_11}; is data.root the IJB-A folder?")
    return found


def load_split(sets_11: Path, sets_1n: Path, n: int) -> IjbaSplit:
    comparisons, lines = read_comparisons(sets_11 / f"split{n}" / f"verify_comparisons_{n}.csv")
    return IjbaSplit(n, read_templates(sets_11 / f"split{n}" / f"verify_metadata_{n}.csv"), comparisons, lines,
                     read_templates(sets_1n / f"split{n}" / f"search_gallery_{n}.csv"),
                     read_templates(sets_1n / f"split{n}" / f"search_probe_{n}.csv"))


def face_keys(tables: list[TemplateRows]) -> dict[tuple[str, tuple], str]:
    """The features-file name of each (FILE, box): FILE itself, or `FILE@x,y,w,h` for a file with several boxes."""
    boxes: dict[str, set[tuple]] = {}
    for t in tables:
        for f, b in zip(t.file, t.box, strict=True):
            boxes.setdefault(f, set()).add(box_key(b))
    return {(f, b): f if len(bs) == 1 else f"{f}@" + ",".join(f"{v:g}" for v in b)
            for f, bs in boxes.items() for b in bs}


def box_key(box: np.ndarray) -> tuple:
    """A hashable box; NaN (empty CSV field) becomes -1 so equal boxes compare equal."""
    return tuple(-1.0 if np.isnan(v) else float(v) for v in box)


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
                       ) -> tuple[dict[str, float], tuple[np.ndarray, np.ndarray], np.ndarray]:
    """One split's numbers (unprefixed keys), its 1:1 (labels, scores) and the scored template-id pairs [P, 2]."""
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
    return out, (labels, scores), pairs


def pooled_calibration_pairs(results: list[tuple[np.ndarray, np.ndarray, np.ndarray]], numbers: list[int],
                             tol: float = 1e-5) -> ScoredPairs:
    """The splits' template pairs pooled into one calibration set, each pair counted once.

    IJB-A's splits share templates (a template id names the same faces in every split it is in) and so share
    pairs; a pair repeated in several splits would count its impostor several times and overstate the FARs the
    set resolves. A repeat is dropped when its score equals the first one's (same faces, within `tol` for the
    pooling's float order); a reused id with other faces scores differently and is kept.

    Args:
        results: per split (labels [P], scores [P], template-id pairs [P, 2]).
        numbers: the split numbers, for the record.
    """
    labels = np.concatenate([r[0] for r in results]).astype(bool)
    scores = np.concatenate([r[1] for r in results]).astype(np.float64)
    ids = np.sort(np.concatenate([r[2] for r in results]).reshape(-1, 2), axis=1)  # a pair is unordered
    _, first, which = np.unique(ids, axis=0, return_index=True, return_inverse=True)
    which = which.reshape(-1)
    keep = np.zeros(len(scores), dtype=bool)
    keep[first] = True
    keep |= np.abs(scores - scores[first[which]]) > tol  # same ids, other faces: a different pair
    return ScoredPairs(labels[keep], scores[keep], {
        "pooled": f"the template pairs of {len(numbers)} split(s) pooled, a pair repeated across splits counted "
                  "once", "splits": [int(n) for n in numbers], "pairs_scored": int(len(scores)),
        "repeated_pairs_dropped": int((~keep).sum())})


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
    calibration = pooled_calibration_pairs([(*r[1], r[2]) for r in results], numbers)
    m = _aggregate([r[0] for r in results], int(p.std_ddof))
    m |= {"ijba/splits": float(len(splits)), "ijba/faces": float(len(names)),
          "ijba/templates_dropped": float(counts["templates_dropped"]), "ijba/pairs_dropped": float(counts["pairs_dropped"])}
    curves = {f"split {s.number}": roc_from_scores(*r[1]) for s, r in zip(splits, results, strict=True)}
    return publish(cfg, "ijba", m, _table(m, cfg, len(splits)), curves, source, calibration={"ijba": calibration},
                   pairs_of="template")
