"""`facetrain data align`: a tree of face photos + a 5-point landmarks file → a tree of aligned crops."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from omegaconf import DictConfig
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from facetrain.atomic import atomic_write
from facetrain.config import abs_path
from facetrain.data.formats.file_index import scan_identity_folders
from facetrain.data.images.alignment import warp_face
from facetrain.data.images.landmarks import read_landmarks
from facetrain.errors import FacetrainError

__all__ = ["align", "align_tree"]

REPORT_NAME = "align_report.json"
MISSING_NAME = "missing_landmarks.txt"


def _out_path(out: Path, rel: str) -> Path:
    return out / Path(rel).with_suffix(".jpg")


def _align_chunk(args) -> list[tuple[str, str]]:
    """Align one chunk of images; return (path, reason) of those that could not be read."""
    src, out, size, quality, items = args
    failed = []
    for rel, points in items:
        dst = _out_path(out, rel)
        try:
            with Image.open(src / rel) as im:
                face = warp_face(im, points, size)
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
            failed.append((rel, str(err) or type(err).__name__))
            continue
        # a killed run never leaves a half-written crop, so resuming can trust what exists
        atomic_write(dst, lambda tmp, face=face: face.save(tmp, format="JPEG", quality=quality))
    return failed


def align_tree(src: Path, landmarks: Path, out: Path, size: tuple[int, int] = (112, 96), workers: int = 2,
               quality: int = 95, progress: bool = True, chunk: int = 64) -> dict:
    """Write `out/<identity>/<image>.jpg`, each image warped onto the 5-point template at `size`.

    Images whose output already exists are skipped (resume). Writes `out/align_report.json` and
    `out/missing_landmarks.txt` (tree images that have no landmarks line).

    Args:
        src: the tree of original photos (`<identity>/<image>`).
        landmarks: `path x1 y1 ... x5 y5` lines, paths relative to `src`.
        out: the aligned tree to write.
        size: (height, width) of the crops.
        workers: processes.
        quality: JPEG quality of the crops.
        progress: show a progress bar.
        chunk: images per task.

    Returns:
        The report: counts of aligned, already present, missing-landmark and unreadable images.
    """
    src, out = src.resolve(), out.resolve()
    if out == src:
        raise FacetrainError("align.out must differ from align.src (the source tree is never overwritten)")
    points = read_landmarks(landmarks)
    tree = scan_identity_folders(src)
    in_tree = set(tree.paths)
    missing = [p for p in tree.paths if p not in points]
    todo = [(p, points[p]) for p in tree.paths if p in points and not _out_path(out, p).exists()]
    tasks = [(src, out, tuple(size), int(quality), todo[i : i + chunk]) for i in range(0, len(todo), chunk)]
    failed: list[tuple[str, str]] = []
    with tqdm(total=len(todo), desc="align", unit="img", disable=not progress) as bar:
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            for task, res in zip(tasks, pool.map(_align_chunk, tasks), strict=True):
                failed += res
                bar.update(len(task[4]))
    out.mkdir(parents=True, exist_ok=True)
    (out / MISSING_NAME).write_text("".join(f"{p}\n" for p in missing))
    report = {
        "src": str(src), "out": str(out), "size": list(size), "tree_images": len(tree.paths),
        "aligned_now": len(todo) - len(failed), "already_aligned": len(tree.paths) - len(missing) - len(todo),
        "missing_landmarks": len(missing), "unreadable": len(failed) + len(tree.bad),
        "unreadable_files": sorted(failed + tree.bad),
        "landmarks_without_image": sum(1 for p in points if p not in in_tree),
    }
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    return report


def align(cfg: DictConfig) -> dict:
    """The `align` data action (configs/data.yaml `align:` section)."""
    a = cfg.align
    report = align_tree(abs_path(a.src), abs_path(a.landmarks), abs_path(a.out),
                        (int(a.size[0]), int(a.size[1])), int(a.workers), int(a.quality), bool(a.progress))
    print(f"aligned {report['aligned_now']} images into {report['out']} ({report['already_aligned']} were already "
          f"there); {report['missing_landmarks']} images have no landmarks (list: {report['out']}/{MISSING_NAME}); "
          f"{report['unreadable']} unreadable")
    return report
