"""`facetrain data align`: a tree of face photos → a tree (or pack) of aligned crops, from a 5-point landmarks file
or from the faces MTCNN finds (its landmarks written as such a file, so another crop size needs no second detection)."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from facetrain.atomic import atomic_write
from facetrain.config import abs_path
from facetrain.data.formats.file_index import scan_identity_folders
from facetrain.data.formats.pack import PACK_FORMATS, pack_tree
from facetrain.data.formats.rec_convert import folder_to_rec
from facetrain.data.images.alignment import warp_face
from facetrain.data.images.landmarks import landmarks_line, read_landmarks, read_landmarks_log
from facetrain.detect import PICKS, detect_faces, detector
from facetrain.errors import FacetrainError

__all__ = ["OUTPUTS", "align", "align_tree"]

REPORT_NAME = "align_report.json"
MISSING_NAME = "missing_landmarks.txt"
LANDMARKS_NAME = "landmarks.txt"  # what detection found, in the format align.landmarks reads
NO_FACE_NAME = "no_face.txt"
SEVERAL_NAME = "several_faces.txt"
_LOG_NAME = ".landmarks.partial"  # detections appended while running: a killed run keeps them
OUTPUTS = ("folders", *PACK_FORMATS, "rec")
_BATCH_PIXELS = 2**24  # decoded photos held per detection batch (a 12 MP photo goes alone)


def _out_path(out: Path, rel: str) -> Path:
    return out / Path(rel).with_suffix(".jpg")


def _one_thread() -> None:
    # each worker takes one CPU (as DataLoader workers do): no oversubscription, and no OpenMP pool
    # inherited from the parent through fork
    torch.set_num_threads(1)


def _save(out: Path, rel: str, image: Image.Image, points: np.ndarray, size, quality: int) -> None:
    face = warp_face(image, points, size)
    # a killed run never leaves a half-written crop, so resuming can trust what exists
    atomic_write(_out_path(out, rel), lambda tmp: face.save(tmp, format="JPEG", quality=quality))


def _flush(batch, out, size, quality, detect, result) -> None:
    """Detect the faces of the batch's photos that have no landmarks yet, then warp and save each."""
    need = [k for k, (_, points, _) in enumerate(batch) if points is None]
    found = detect_faces([batch[k][2] for k in need], **detect) if need else []
    for k, det in zip(need, found, strict=True):
        rel, _, image = batch[k]
        if det is None:
            result["no_face"].append((rel, f"no face of {detect['min_face']:g}+ pixels found"))
        else:
            result["found"].append((rel, det.landmarks))
            if det.faces > 1:
                result["several"].append((rel, det.faces))
            batch[k] = (rel, det.landmarks, image)
    for rel, points, image in batch:
        if points is not None:
            _save(out, rel, image, points, size, quality)
    batch.clear()


def _align_chunk(args) -> dict:
    """Align one chunk of images; report the unreadable ones and, when detecting, what was found."""
    src, out, size, quality, items, detect = args
    result: dict = {"failed": [], "found": [], "no_face": [], "several": []}
    batch, pixels = [], 0
    for rel, points in items:
        try:
            with Image.open(src / rel) as im:
                image = im.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            result["failed"].append((rel, str(err) or type(err).__name__))
            continue
        batch.append((rel, points, image))
        pixels += image.width * image.height
        if pixels >= _BATCH_PIXELS:
            _flush(batch, out, size, quality, detect, result)
            pixels = 0
    _flush(batch, out, size, quality, detect, result)
    return result


def _known_landmarks(out: Path) -> dict[str, np.ndarray]:
    """What earlier (possibly killed) runs detected: the final file, then the log of the last run."""
    known = read_landmarks(out / LANDMARKS_NAME) if (out / LANDMARKS_NAME).is_file() else {}
    known.update(read_landmarks_log(out / _LOG_NAME))
    return known


def _write_list(path: Path, rows: list[tuple]) -> None:
    atomic_write(path, lambda tmp: tmp.write_text("".join("\t".join(map(str, r)) + "\n" for r in sorted(rows))))


def align_tree(src: Path, landmarks: Path | None, out: Path, size: tuple[int, int] = (112, 96), workers: int = 2,
               quality: int = 95, progress: bool = True, chunk: int = 32, pick: str = "largest",
               device: str = "cpu", min_face: float = 20.0) -> dict:
    """Write `out/<identity>/<image>.jpg`, each image warped onto the 5-point template at `size`.

    Images whose output already exists are skipped (resume). Writes `out/align_report.json` and
    `out/missing_landmarks.txt` (tree images that have no landmarks line). Without a landmarks file
    the faces are detected (MTCNN): `out/landmarks.txt` keeps their landmarks, `out/no_face.txt`
    lists the photos without a face (skipped) and `out/several_faces.txt` those with more than one.

    Args:
        src: the tree of original photos (`<identity>/<image>`).
        landmarks: `path x1 y1 ... x5 y5` lines, paths relative to `src`; None detects the faces.
        out: the aligned tree to write.
        size: (height, width) of the crops.
        workers: processes of one CPU thread each (0: this process alone, as when the detector is on a GPU).
        quality: JPEG quality of the crops.
        progress: show a progress bar.
        chunk: images per task.
        pick: the face kept when a photo has several: `largest` or `central`.
        device: where the detector runs (cpu, cuda, cuda:N).
        min_face: the smallest face side (pixels) the detector looks for.

    Returns:
        The report: counts of aligned, already present, missing-landmark, no-face and unreadable images.
    """
    src, out = src.resolve(), out.resolve()
    if out == src:
        raise FacetrainError("align.out must differ from align.src (the source tree is never overwritten)")
    if pick not in PICKS:
        raise FacetrainError(f"align.pick={pick!r} is not known; use one of {', '.join(PICKS)}")
    detecting = landmarks is None
    if detecting:
        detector(device, float(min_face))  # a wrong setting or missing weights stop here, before any work
    tree = scan_identity_folders(src)
    points = _known_landmarks(out) if detecting else read_landmarks(landmarks)
    missing = [] if detecting else [p for p in tree.paths if p not in points]
    todo = [(p, points.get(p)) for p in tree.paths if (detecting or p in points) and not _out_path(out, p).exists()]
    detect = {"pick": pick, "device": device, "min_face": float(min_face)}
    tasks = [(src, out, tuple(size), int(quality), todo[i : i + chunk], detect) for i in range(0, len(todo), chunk)]
    res = _run(tasks, out, len(todo), workers, device, progress)
    out.mkdir(parents=True, exist_ok=True)
    if not detecting:
        _write_list(out / MISSING_NAME, [(p,) for p in missing])
    report = {
        "src": str(src), "out": str(out), "size": list(size), "tree_images": len(tree.paths),
        "aligned_now": len(todo) - len(res["failed"]) - len(res["no_face"]),
        "already_aligned": len(tree.paths) - len(missing) - len(todo),
        "missing_landmarks": len(missing), "unreadable": len(res["failed"]) + len(tree.bad),
        "unreadable_files": sorted(res["failed"] + tree.bad),
    }
    if detecting:
        points.update(dict(res["found"]))
        text = "".join(landmarks_line(p, points[p]) for p in sorted(points))
        atomic_write(out / LANDMARKS_NAME, lambda tmp: tmp.write_text(text))
        (out / _LOG_NAME).unlink(missing_ok=True)
        _write_list(out / NO_FACE_NAME, res["no_face"])
        _write_list(out / SEVERAL_NAME, res["several"])
        report.update(detected_now=len(res["found"]), no_face=len(res["no_face"]), no_face_files=sorted(res["no_face"]),
                      several_faces=len(res["several"]), pick=pick, min_face=float(min_face))
    else:
        report["landmarks_without_image"] = sum(1 for p in points if p not in set(tree.paths))
    atomic_write(out / REPORT_NAME, lambda tmp: tmp.write_text(json.dumps(report, indent=2) + "\n"))
    return report


def _run(tasks: list, out: Path, total: int, workers: int, device: str, progress: bool) -> dict:
    """Run the chunks (in worker processes on the CPU; here when workers=0 or the detector is on a GPU);
    each chunk's detections are appended to the log as it completes."""
    res: dict = {"failed": [], "found": [], "no_face": [], "several": []}
    in_process = workers <= 0 or not str(device).startswith("cpu")
    pool = None if in_process else ProcessPoolExecutor(max_workers=workers, initializer=_one_thread)
    results = map(_align_chunk, tasks) if pool is None else pool.map(_align_chunk, tasks)
    try:
        with tqdm(total=total, desc="align", unit="img", disable=not progress) as bar:
            for task, part in zip(tasks, results, strict=True):
                if part["found"]:
                    out.mkdir(parents=True, exist_ok=True)
                    with (out / _LOG_NAME).open("a") as log:  # one write per chunk; a torn last line is ignored
                        log.write("".join(landmarks_line(p, v) for p, v in part["found"]))
                for key in res:
                    res[key] += part[key]
                bar.update(len(task[4]))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return res


def _pack(tree: Path, out: Path, to: str, size: tuple[int, int], workers: int, progress: bool) -> None:
    if to == "rec":
        folder_to_rec(tree, out, overwrite=False, progress=progress)
    else:
        pack_tree(tree, out, to, size, "resize", max(1, workers), progress=progress)
    for name in (LANDMARKS_NAME, NO_FACE_NAME, SEVERAL_NAME, MISSING_NAME):
        if (tree / name).is_file():
            shutil.copy2(tree / name, out / name)


def align(cfg: DictConfig) -> dict:
    """The `align` data action (configs/data.yaml `align:` section)."""
    a = cfg.align
    to, out = str(a.get("to", "folders")), abs_path(a.out)
    if not abs_path(a.src).is_dir():
        raise FacetrainError(f"align.src={abs_path(a.src)} is not a folder; point align.src=... at the photos, "
                             "one folder per person (<person>/<photo>.jpg)")
    if to not in OUTPUTS:
        raise FacetrainError(f"align.to={to!r} is not known; use one of {', '.join(OUTPUTS)}")
    if to != "folders" and out.exists():
        raise FacetrainError(f"align.out={out} exists; remove it or choose another align.out for the {to} pack")
    # a pack is written from a hidden tree of crops beside it, which also makes a killed run resumable
    tree = out if to == "folders" else out.with_name(f".{out.name}.crops")
    size = (int(a.size[0]), int(a.size[1]))
    report = align_tree(abs_path(a.src), abs_path(a.landmarks) if a.get("landmarks") else None, tree, size,
                        int(a.workers), int(a.quality), bool(a.progress), pick=str(a.get("pick", "largest")),
                        device=str(a.get("device", "cpu")), min_face=float(a.get("min_face", 20)))
    if to != "folders":
        if report["aligned_now"] + report["already_aligned"] == 0:
            raise FacetrainError(f"no photo under {abs_path(a.src)} was aligned, so there is no {to} pack to write; "
                                 f"see the reasons in {tree / REPORT_NAME}")
        _pack(tree, out, to, size, int(a.workers), bool(a.progress))
        shutil.rmtree(tree)
        report.update(out=str(out), to=to)
        (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    _print_report(report, out)
    return report


def _print_report(report: dict, out: Path, shown: int = 20) -> None:
    skipped = report["unreadable_files"] + report.get("no_face_files", [])
    for rel, reason in skipped[:shown]:
        print(f"skipped {rel}: {reason}")
    if len(skipped) > shown:
        print(f"... and {len(skipped) - shown} more (listed in {out / REPORT_NAME})")
    line = (f"aligned {report['aligned_now']} images into {report['out']} ({report['already_aligned']} were already "
            f"there); {report['unreadable']} unreadable")
    if "no_face" in report:
        line += (f"; detected {report['detected_now']} faces, {report['no_face']} photos without a face "
                 f"({out / NO_FACE_NAME}), {report['several_faces']} with several (kept the {report['pick']}; "
                 f"{out / SEVERAL_NAME}); landmarks: {out / LANDMARKS_NAME}")
    else:
        line += f"; {report['missing_landmarks']} images have no landmarks (list: {out / MISSING_NAME})"
    print(line)
