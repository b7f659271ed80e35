"""An IJB-C-shaped tree in insightface's evaluation layout: loose crops, 5-point landmarks, the meta files.

`loose_crop/<n>.jpg`: a face turned, scaled and placed in a larger loose crop; its landmarks are the 5-point
template carried by that placement (plus half a pixel of detector jitter), so aligning by them gives back
the kind of crop the synthetic training set holds. The detector score falls with image quality.
`meta/ijbc_face_tid_mid.txt`, `ijbc_name_5pts_score.txt`, `ijbc_template_pair_label.txt` (1:1: each gallery
template against the probe templates, as IJB-C's G1/G2 matches), and the 1:N `ijbc_1N_gallery_G1.csv`,
`_G2.csv` (subjects split between the two galleries, one template each) and `ijbc_1N_probe_mixed.csv`.
A template has 1-3 media; a media is a still (one image) or a video (2-4 frames sharing the media id).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from facetrain.data.images.alignment import TEMPLATE_112x96, warp_affine
from facetrain.data.synth.identity import sample_identity
from facetrain.data.synth.nuisance import sample_nuisance
from facetrain.data.synth.render import render_face
from facetrain.data.synth.ytf_tree import frame_nuisance

__all__ = ["CSV_HEADER", "write_ijbc"]

_IJBC = 6  # random stream of IJB-C subjects
CSV_HEADER = ["TEMPLATE_ID", "SUBJECT_ID", "FILENAME", "SIGHTING_ID", "FACE_X", "FACE_Y", "FACE_WIDTH", "FACE_HEIGHT"]


def _plan(seed: int, subjects: int, templates: int) -> list[list[tuple]]:
    """Per subject, its templates (the first is the gallery's): [(template id, [(media id, frames)])]."""
    rng = np.random.default_rng([seed, _IJBC])
    tid, mid, plan = 0, 0, []
    for _ in range(subjects):
        mine = []
        for _ in range(templates + 1):
            tid += 1
            media = []
            for _ in range(int(rng.integers(1, 4))):
                mid += 1
                media.append((mid, int(rng.integers(2, 5)) if rng.random() < 0.3 else 1))
            mine.append((tid, media))
        plan.append(mine)
    return plan


def _loose_crop(face: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray, list[float]]:
    """The face turned, scaled and placed in a loose crop; its landmarks and face box there."""
    s, angle = rng.uniform(0.9, 1.5), np.radians(np.clip(rng.normal(0, 12), -30, 30))
    w, h = int(96 * s * rng.uniform(1.3, 1.7)), int(112 * s * rng.uniform(1.3, 1.6))
    rot = s * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([w / 2, h / 2]) + rng.normal(0, 4, 2)
    matrix = np.hstack([rot, (centre - rot @ np.array([47.5, 55.5]))[:, None]])  # crop centre -> loose centre
    scene = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(0, 256, 3)))
    scene.paste(warp_affine(face, matrix, (h, w)), (0, 0), warp_affine(Image.new("L", face.size, 255), matrix, (h, w)))
    points = TEMPLATE_112x96 @ rot.T + matrix[:, 2] + rng.normal(0, 0.5, (5, 2))
    corners = np.array([[0, 0], [95, 0], [0, 111], [95, 111]]) @ rot.T + matrix[:, 2]
    low, high = corners.min(0), corners.max(0)
    return scene, points, [*low.tolist(), *(high - low).tolist()]


def _render_subject(args) -> list[tuple]:
    """All images of one subject (a worker-process task): [(template, media, name, landmarks, score, box)]."""
    seed, subject, templates, first_name, folder, quality = args
    ident = sample_identity(np.random.default_rng([seed, _IJBC, subject]))
    rows, name = [], first_name
    for tid, media in templates:
        for mid, frames in media:
            rng = np.random.default_rng([seed, _IJBC, subject, mid])
            nz = sample_nuisance(rng)
            for f in range(frames):
                frng = np.random.default_rng([seed, _IJBC, subject, mid, f + 1])
                fnz = nz if frames == 1 else frame_nuisance(nz, frng)
                scene, points, box = _loose_crop(render_face(ident, fnz, frng), frng)
                scene.save(folder / f"{name}.jpg", quality=quality)
                rows.append((tid, mid, f"{name}.jpg", points, 1.0 - 0.5 * fnz.quality, box))
                name += 1
    return rows


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def _write_csv(path: Path, rows: list[list]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_HEADER)
        writer.writerows(rows)


def _pairs(plan: list[list[tuple]], ratio: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Gallery template vs probe templates: every genuine pair, `ratio` times as many impostor pairs."""
    genuine = [(mine[0][0], t, 1) for mine in plan for t, _ in mine[1:]]
    probes = [(t, s) for s, mine in enumerate(plan) for t, _ in mine[1:]]
    impostor: set[tuple[int, int, int]] = set()
    most = len(plan) * (len(plan) - 1) * (len(plan[0]) - 1)
    while len(impostor) < min(ratio * len(genuine), most):
        s = int(rng.integers(len(plan)))
        t, other = probes[int(rng.integers(len(probes)))]
        if other != s:
            impostor.add((plan[s][0][0], t, 0))
    return genuine + sorted(impostor)


def write_ijbc(out: Path, seed: int, subjects: int, templates: int, impostor_ratio: int, quality: int,
               render_all) -> dict:
    """Render the subjects' loose crops, then write the meta files; returns counts for the synth summary."""
    plan = _plan(seed, subjects, templates)
    folder, meta = out / "loose_crop", out / "meta"
    folder.mkdir(parents=True, exist_ok=True)
    meta.mkdir(parents=True, exist_ok=True)
    tasks, first = [], 1
    for s, mine in enumerate(plan):
        tasks.append((seed, s, mine, first, folder, quality))
        first += sum(frames for _, media in mine for _, frames in media)
    rendered = render_all(_render_subject, tasks, first - 1, "synth ijbc")
    rows = [r for subject in rendered for r in subject]
    _write_lines(meta / "ijbc_face_tid_mid.txt", [f"{name} {tid} {mid}" for tid, mid, name, *_ in rows])
    _write_lines(meta / "ijbc_name_5pts_score.txt", [
        f"{name} " + " ".join(f"{v:.3f}" for v in points.reshape(-1)) + f" {score:.4f}"
        for _, _, name, points, score, _ in rows])
    pairs = _pairs(plan, impostor_ratio, np.random.default_rng([seed, _IJBC, 1]))
    _write_lines(meta / "ijbc_template_pair_label.txt", [f"{a} {b} {label}" for a, b, label in pairs])
    subject_of = {tid: 100 + s for s, mine in enumerate(plan) for tid, _ in mine}
    gallery = {tid for mine in plan for tid in (mine[0][0],)}
    csv_rows = {tid: [] for tid in subject_of}
    for sighting, (tid, _, name, _, _, box) in enumerate(rows, start=1):
        csv_rows[tid].append([tid, subject_of[tid], f"img/{name}", sighting, *(f"{v:.2f}" for v in box)])
    for g, half in (("G1", 0), ("G2", 1)):
        _write_csv(meta / f"ijbc_1N_gallery_{g}.csv",
                   [r for s, mine in enumerate(plan) if s % 2 == half for r in csv_rows[mine[0][0]]])
    _write_csv(meta / "ijbc_1N_probe_mixed.csv", [r for tid, rs in csv_rows.items() if tid not in gallery for r in rs])
    return {"ijbc_subjects": subjects, "ijbc_images": len(rows), "ijbc_pairs": len(pairs)}
