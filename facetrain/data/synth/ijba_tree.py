"""An IJB-A-style tree: scene images and video frames with face boxes, and the protocol CSVs in the real format.

`images/img/<MEDIA_ID>.jpg` (stills) and `images/frame/<MEDIA_ID>_<frame>.png` (video frames) show a face
somewhere in a larger scene; the CSVs give its box. Per split N: `IJB-A_11_sets/splitN/verify_metadata_N.csv`,
`verify_comparisons_N.csv` (no header), `train_N.csv`, and `IJB-A_1N_sets/splitN/search_gallery_N.csv`,
`search_probe_N.csv`, `train_N.csv` — CRLF line endings, the real 25-column header, empty fields where the
synthetic data has no annotation (landmarks, attributes).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from facetrain.data.synth.identity import sample_identity
from facetrain.data.synth.nuisance import sample_nuisance
from facetrain.data.synth.render import render_face
from facetrain.data.synth.ytf_tree import frame_nuisance

__all__ = ["IJBA_HEADER", "write_ijba"]

_IJBA = 5  # random stream of IJB-A subjects
IJBA_HEADER = ("TEMPLATE_ID,SUBJECT_ID,FILE,MEDIA_ID,SIGHTING_ID,FRAME,FACE_X,FACE_Y,FACE_WIDTH,FACE_HEIGHT,"
               "RIGHT_EYE_X,RIGHT_EYE_Y,LEFT_EYE_X,LEFT_EYE_Y,NOSE_BASE_X,NOSE_BASE_Y,FACE_YAW,FOREHEAD_VISIBLE,"
               "EYES_VISIBLE,NOSE_MOUTH_VISIBLE,INDOOR,GENDER,SKIN_TONE,AGE,FACIAL_HAIR").split(",")
_MEDIA_PER_SUBJECT = 100  # MEDIA_ID = 1000 + subject * 100 + k


def _scene(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    img = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 9))):
        x, y, r = int(rng.integers(0, size[0])), int(rng.integers(0, size[1])), int(rng.integers(10, 60))
        draw.rectangle([x - r, y - r, x + r, y + r], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return img


_BOX = 1 / 1.4  # the face box covers the central 1/1.4 of the rendered crop: eval's default margin 0.2 restores it


def _place(scene: Image.Image, face: Image.Image, x: int, y: int) -> list[float]:
    """Paste the rendered face crop (an aligned crop with some context); return the tighter face box."""
    scene.paste(face, (x, y))
    w, h = face.size
    return [x + (1 - _BOX) / 2 * w, y + (1 - _BOX) / 2 * h, _BOX * w, _BOX * h]


def _render_subject(args) -> list[tuple]:
    """All media of one subject (a worker-process task): [(media_id, [(file, frame, box, yaw)])]."""
    seed, subject, stills, videos, frames, images, quality = args
    ident = sample_identity(np.random.default_rng([seed, _IJBA, subject]))
    media = []
    for k in range(stills + videos):
        rng = np.random.default_rng([seed, _IJBA, subject, k + 1])
        media_id = 1000 + subject * _MEDIA_PER_SUBJECT + k
        scene_size = (int(rng.integers(200, 360)), int(rng.integers(200, 300)))
        scale = rng.uniform(0.45, 1.2)
        fw, fh = int(96 * scale), int(112 * scale)
        x, y = int(rng.integers(0, scene_size[0] - fw)), int(rng.integers(0, scene_size[1] - fh))
        nz = sample_nuisance(rng)
        rows = []
        if k < stills:
            scene = _scene(rng, scene_size)
            box = _place(scene, render_face(ident, nz, rng, size=(fw, fh)), x, y)
            scene.save(images / "img" / f"{media_id}.jpg", quality=quality)
            rows.append((f"img/{media_id}.jpg", None, box, nz.yaw))
        else:
            background = _scene(rng, scene_size)
            for f in range(frames):
                frng = np.random.default_rng([seed, _IJBA, subject, k + 1, f + 1])
                fnz = frame_nuisance(nz, frng)
                scene = background.copy()
                dx, dy = int(frng.integers(-4, 5)), int(frng.integers(-4, 5))
                px, py = min(max(x + dx, 0), scene_size[0] - fw), min(max(y + dy, 0), scene_size[1] - fh)
                box = _place(scene, render_face(ident, fnz, frng, size=(fw, fh)), px, py)
                frame_no = 30 * (f + 1)
                scene.save(images / "frame" / f"{media_id}_{frame_no:05d}.png")
                rows.append((f"frame/{media_id}_{frame_no:05d}.png", frame_no, box, fnz.yaw))
        media.append((media_id, rows))
    return media


def _write_csv(path: Path, rows: list[list], header: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")  # IJB-A's CSVs use CRLF
        if header:
            writer.writerow(IJBA_HEADER)
        writer.writerows(rows)


class _Rows:
    """Template rows with running template and sighting ids."""

    def __init__(self):
        self.template, self.sighting = 0, 0

    def template_rows(self, subject_id: int, media: list[tuple]) -> tuple[int, list[list]]:
        self.template += 1
        rows = []
        for media_id, faces in media:
            for file, frame, box, yaw in faces:
                self.sighting += 1
                rows.append([self.template, subject_id, file, media_id, self.sighting, "" if frame is None else frame,
                             *(f"{v:.4f}" for v in box), "", "", "", "", "", "", f"{np.degrees(yaw):.4f}",
                             "", "", "", "", "", "", "", ""])
        return self.template, rows


def _pick(rng: np.random.Generator, pool: list, most: int) -> list:
    count = int(rng.integers(1, min(most, len(pool)) + 1))
    return [pool[i] for i in sorted(rng.choice(len(pool), count, replace=False))]


def _write_split(out: Path, n: int, media: list[list[tuple]], templates: int, impostor_ratio: int,
                 rng: np.random.Generator) -> dict:
    subjects = len(media)
    order = rng.permutation(subjects)
    test, train = sorted(order[: max(3, subjects // 3)]), sorted(order[max(3, subjects // 3):])
    in_gallery = set(rng.choice(test, max(2, round(len(test) * 2 / 3)), replace=False).tolist())
    ids, probe_rows, gallery_rows, train_rows = _Rows(), [], [], []
    probe_templates: list[tuple[int, int]] = []  # (template id, subject)
    for s in test:
        pool = [media[s][i] for i in rng.permutation(len(media[s]))]
        if s in in_gallery:  # the gallery template takes a third of the media; probes use the rest
            cut = max(1, len(pool) // 3)
            gallery_rows += ids.template_rows(100 + s, pool[:cut])[1]
            pool = pool[cut:]
        for _ in range(templates):
            tid, rows = ids.template_rows(100 + s, _pick(rng, pool, 3))
            probe_rows += rows
            probe_templates.append((tid, s))
    for s in train:
        train_rows += ids.template_rows(100 + s, media[s])[1]
    genuine = [(a, b) for i, (a, sa) in enumerate(probe_templates) for b, sb in probe_templates[i + 1:] if sa == sb]
    impostor: set[tuple[int, int]] = set()
    most = len(probe_templates) * (len(probe_templates) - 1) // 2 - len(genuine)  # every other pair, at few subjects
    while len(impostor) < min(impostor_ratio * len(genuine), most):
        i, j = sorted(rng.choice(len(probe_templates), 2, replace=False))
        if probe_templates[i][1] != probe_templates[j][1]:
            impostor.add((probe_templates[i][0], probe_templates[j][0]))
    sets_11, sets_1n = out / "IJB-A_11_sets" / f"split{n}", out / "IJB-A_1N_sets" / f"split{n}"
    _write_csv(sets_11 / f"verify_metadata_{n}.csv", probe_rows)  # 1:1 templates = the probe templates, as in IJB-A
    _write_csv(sets_11 / f"verify_comparisons_{n}.csv", [list(p) for p in genuine + sorted(impostor)], header=False)
    _write_csv(sets_11 / f"train_{n}.csv", train_rows)
    _write_csv(sets_1n / f"search_gallery_{n}.csv", gallery_rows)
    _write_csv(sets_1n / f"search_probe_{n}.csv", probe_rows)
    _write_csv(sets_1n / f"train_{n}.csv", train_rows)
    return {"genuine": len(genuine), "impostor": len(impostor)}


def write_ijba(out: Path, seed: int, splits: int, subjects: int, templates: int, impostor_ratio: int, quality: int,
               render_all) -> dict:
    """Render the subjects' media, then write the CSVs of `splits` splits."""
    rng = np.random.default_rng([seed, _IJBA])
    stills, videos = rng.integers(2, 5, subjects), rng.integers(1, 3, subjects)
    frames = rng.integers(3, 6, subjects)
    images = out / "images"
    for sub in ("img", "frame"):
        (images / sub).mkdir(parents=True, exist_ok=True)
    tasks = [(seed, s, int(stills[s]), int(videos[s]), int(frames[s]), images, quality) for s in range(subjects)]
    media = render_all(_render_subject, tasks, int((stills + videos * frames).sum()), "synth ijba")
    pairs = [_write_split(out, n, media, templates, impostor_ratio, np.random.default_rng([seed, _IJBA, 1000 + n]))
             for n in range(1, splits + 1)]
    return {"ijba_subjects": subjects, "ijba_images": int((stills + videos * frames).sum()),
            "ijba_pairs": sum(p["genuine"] + p["impostor"] for p in pairs)}
