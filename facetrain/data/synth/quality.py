"""Each synthetic image's quality factors (Ranjan et al. 2017, fig. 1: feature norm tracks face quality), as one TSV per
tree next to the trees (`<out>/quality/casia.tsv`, `<out>/quality/lfw.tsv`), so the trees keep CASIA's and LFW's
exact layout.

The factors are recomputed from the same random draws that rendered the image (`sample_nuisance` on the
image's own generator), so recording them renders nothing and leaves every image byte-identical; a tree
written before this file existed gets its `quality.tsv` without being regenerated.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from facetrain.data.synth.nuisance import Nuisance, sample_nuisance
from facetrain.errors import FacetrainError

__all__ = ["QUALITY_FIELDS", "quality_factors", "quality_path", "read_quality", "write_quality"]

# quality: the long-tailed level (0 pristine .. 1 worst); blur: Gaussian sigma in pixels; downsample: the factor the
# image was shrunk by before being brought back; noise: pixel noise sigma (0..255); occlusion: 0 none, 1 eyes,
# 2 lower face, 3 blob; yaw/pitch: radians; roll: degrees; pose: |yaw| + |pitch| (radians)
QUALITY_FIELDS = ("quality", "blur", "downsample", "noise", "occlusion", "yaw", "pitch", "roll", "pose")


def quality_factors(nz: Nuisance) -> dict[str, float]:
    """What degraded one image, as render.py's `_degrade`, `_occlude` and `_frame` applied it."""
    q = nz.quality
    degraded = q > 0.05  # render.py leaves the mildest images at full resolution and unblurred
    return {"quality": q, "blur": 2.0 * q if degraded else 0.0, "downsample": 1 + 4 * q if degraded else 1.0,
            "noise": 2 + 12 * q, "occlusion": float(nz.occlusion), "yaw": nz.yaw, "pitch": nz.pitch,
            "roll": nz.roll, "pose": abs(nz.yaw) + abs(nz.pitch)}


def quality_path(tree: Path) -> Path:
    """Where the factors of the images under `tree` (<out>/casia) are listed: <out>/quality/casia.tsv."""
    return Path(tree).parent / "quality" / f"{Path(tree).name}.tsv"


def write_quality(tree: Path, tasks: list) -> Path:
    """The quality file of `tree` for the render tasks that wrote the tree (trees.py's `_render_person` arguments)."""
    rows = []
    for stream, seed, person, count, folder, pattern, _size, _jpeg in tasks:
        for k in range(count):
            nz = sample_nuisance(np.random.default_rng([seed, stream, person, k + 1]))
            rel = (Path(folder) / pattern.format(k + 1)).relative_to(tree).as_posix()
            rows.append([rel, *(f"{v:.6g}" for v in quality_factors(nz).values())])
    path = quality_path(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(r) + "\n" for r in [["path", *QUALITY_FIELDS], *rows]))
    return path


def read_quality(tree: Path) -> dict[str, dict[str, float]]:
    """path (relative to the tree) -> its factors; a missing or malformed file is named with its fix."""
    path = quality_path(tree)
    if not path.is_file():
        raise FacetrainError(f"{path} does not exist; run `facetrain data synth` (it adds the quality files to "
                             "existing synthetic trees without re-rendering them)")
    with path.open(newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, [])
        if header[:1] != ["path"] or not set(QUALITY_FIELDS) <= set(header):
            raise FacetrainError(f"{path} has header {header}, not path + {', '.join(QUALITY_FIELDS)}; delete it "
                                 "and run `facetrain data synth` to write it again")
        out = {}
        for line_no, row in enumerate(reader, start=2):
            try:
                out[row[0]] = {k: float(v) for k, v in zip(header[1:], row[1:], strict=True)}
            except (ValueError, IndexError) as err:
                raise FacetrainError(f"{path} line {line_no} is malformed ({err}); delete the file and run "
                                     "`facetrain data synth` to write it again") from None
    return out
