"""Faults injected into the synthetic training tree (`synth.faults`), with a ground-truth list of each one.

Scraped face sets carry five kinds of dirt that `facetrain data audit` looks for; the generator plants a known
number of each, so the audit's recall and precision can be measured (scripts/audit_recall.py):

- exact duplicates: a byte copy, or a lossless PNG re-save (the same decoded pixels, other bytes);
- near duplicates: a copy shrunk (thumbnail), recompressed at a low JPEG quality, or cropped a few percent and
  resized back;
- merged identities: one person under two names (an identity's later images moved to a new folder);
- mislabeled images: an image of identity A moved into identity B's folder;
- evaluation overlap: a new training identity rendered from a person of the synthetic LFW tree (new photos of
  them, not LFW's own images), under a CASIA-style number, so only an embedding can find it.

Half of the duplicates land in their source's own folder and half in another identity's; a copy in another
folder is also an image of A filed under B, so it is listed as mislabeled too. The ground truth is
`<out>/faults/casia.tsv`: `kind<TAB>item<TAB>source<TAB>detail` rows; quality/casia.tsv follows the moves.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from facetrain.data.synth.identity import sample_identity
from facetrain.data.synth.nuisance import sample_nuisance
from facetrain.data.synth.render import render_face
from facetrain.errors import FacetrainError

__all__ = ["FAULT_KINDS", "FaultSpec", "faults_path", "inject_faults", "read_faults"]

FAULT_KINDS = ("exact_duplicate", "near_duplicate", "merged_identity", "mislabeled", "eval_overlap")
NEAR_EDITS = ("resize", "recompress", "crop")
_STREAM = 3  # the faults' own random stream (trees.py: 1 training people, 2 evaluation people)
_OVERLAP_IMAGES = 8  # images of each overlapping person: enough for a class centre


@dataclass(frozen=True)
class FaultSpec:
    """How many of each fault to plant (all 0: a clean tree, byte-identical to one made without faults)."""

    exact_duplicates: int = 0
    near_duplicates: int = 0
    merged_identities: int = 0
    mislabeled: int = 0
    eval_overlap: int = 0

    def __bool__(self) -> bool:
        return any(self.__dict__.values())


def faults_path(tree: Path) -> Path:
    """Where the faults planted in `tree` (<out>/casia) are listed: <out>/faults/casia.tsv."""
    return Path(tree).parent / "faults" / f"{Path(tree).name}.tsv"


def _identity_files(tree: Path) -> dict[str, list[str]]:
    return {d.name: sorted(f.name for f in d.iterdir()) for d in sorted(tree.iterdir()) if d.is_dir()}


def _next_name(folder: Path, suffix: str) -> str:
    """The next free CASIA-style image name in `folder` (001.jpg, 002.jpg, ...)."""
    numbers = [int(p.stem) for p in folder.iterdir() if p.stem.isdigit()]
    return f"{max(numbers, default=0) + 1:03d}{suffix}"


def _jpeg(image: Image.Image, path: Path, quality: int) -> None:
    image.save(path, format="JPEG", quality=int(quality))


def _near_copy(src: Path, dst: Path, edit: str, rng: np.random.Generator) -> str:
    """Write an edited copy of `src` to `dst`; return what was done (the ground truth's detail)."""
    with Image.open(src) as im:
        image = im.convert("RGB")
    w, h = image.size
    if edit == "resize":
        scale = float(rng.uniform(0.6, 0.85))
        image = image.resize((max(8, round(w * scale)), max(8, round(h * scale))), Image.Resampling.BICUBIC)
        _jpeg(image, dst, 90)
        return f"resize x{scale:.2f}"
    if edit == "recompress":
        quality = int(rng.integers(35, 65))
        _jpeg(image, dst, quality)
        return f"jpeg quality {quality}"
    cut = rng.uniform(0.02, 0.06, size=4)  # left, top, right, bottom fractions
    box = (round(w * cut[0]), round(h * cut[1]), w - round(w * cut[2]), h - round(h * cut[3]))
    _jpeg(image.crop(box).resize((w, h), Image.Resampling.BICUBIC), dst, 90)
    return f"crop {max(cut):.0%} and resize back"


class _Planter:
    """Applies the faults to a tree in a fixed order, recording ground truth and every file move."""

    def __init__(self, tree: Path, rng: np.random.Generator, quality: int):
        self.tree, self.rng, self.quality = tree, rng, quality
        self.files = _identity_files(tree)
        self.rows: list[tuple[str, str, str, str]] = []
        self.moves: dict[str, str] = {}  # old relative path -> new (for quality/casia.tsv)
        self.copies: dict[str, str] = {}  # new relative path -> the path it copies
        self.used: set[str] = set()  # identities already given a fault (each fault gets its own people)

    def take_identities(self, n: int, min_images: int = 1) -> list[str]:
        free = [c for c, f in self.files.items() if c not in self.used and len(f) >= min_images]
        if len(free) < n:
            raise FacetrainError(f"synth.faults needs {n} more identities with at least {min_images} images than the "
                                 f"{len(free)} left; raise synth.train_identities or lower the fault counts")
        chosen = [free[i] for i in sorted(self.rng.choice(len(free), n, replace=False))]
        self.used |= set(chosen)
        return chosen

    def new_identity(self) -> str:
        name = f"{max(int(c) for c in self.files) + 1:07d}"
        (self.tree / name).mkdir()
        self.files[name] = []
        return name

    def duplicates(self, n: int, exact: bool) -> None:
        sources = self.take_identities(n)
        targets = self.take_identities(n - n // 2) if n else []
        for k, ident in enumerate(sources):
            src = f"{ident}/{self.files[ident][int(self.rng.integers(len(self.files[ident])))]}"
            into = ident if k < n // 2 else targets[k - n // 2]  # first half in its own folder, second half across
            if exact:
                suffix = ".jpg" if k % 2 == 0 else ".png"
                dst = f"{into}/{_next_name(self.tree / into, suffix)}"
                if suffix == ".jpg":
                    shutil.copyfile(self.tree / src, self.tree / dst)
                    detail = "byte copy"
                else:
                    with Image.open(self.tree / src) as im:
                        im.convert("RGB").save(self.tree / dst, format="PNG")
                    detail = "lossless PNG re-save"
                kind = "exact_duplicate"
            else:
                dst = f"{into}/{_next_name(self.tree / into, '.jpg')}"
                detail = _near_copy(self.tree / src, self.tree / dst, NEAR_EDITS[k % len(NEAR_EDITS)], self.rng)
                kind = "near_duplicate"
            self.files[into].append(dst.split("/", 1)[1])
            self.copies[dst] = src
            self.rows.append((kind, dst, src, detail + ("" if into == ident else " in another identity")))
            if into != ident:
                self.rows.append(("mislabeled", dst, ident, f"{kind} of {src} filed under {into}"))

    def merged(self, n: int) -> None:
        for ident in self.take_identities(n, min_images=4):
            files = self.files[ident]
            moved, twin = files[len(files) // 2 :], self.new_identity()
            for k, name in enumerate(moved, start=1):
                self._move(f"{ident}/{name}", f"{twin}/{k:03d}{Path(name).suffix}")
            self.files[ident] = files[: len(files) // 2]
            self.rows.append(("merged_identity", twin, ident, f"{len(moved)} of {len(files)} images moved"))

    def mislabeled(self, n: int) -> None:
        sources, targets = self.take_identities(n, min_images=3), self.take_identities(n)
        for a, b in zip(sources, targets, strict=True):
            name = self.files[a].pop(int(self.rng.integers(len(self.files[a]))))
            dst = f"{b}/{_next_name(self.tree / b, Path(name).suffix)}"
            self._move(f"{a}/{name}", dst)
            self.rows.append(("mislabeled", dst, a, f"{a}/{name} filed under {b}"))

    def eval_overlap(self, n: int, lfw_people: list[str], seed: int, size: tuple[int, int], stream: int) -> None:
        if n > len(lfw_people):
            raise FacetrainError(f"synth.faults.eval_overlap={n} exceeds the {len(lfw_people)} people of the LFW tree")
        for person in sorted(self.rng.choice(len(lfw_people), n, replace=False)):
            ident = self.new_identity()
            traits = sample_identity(np.random.default_rng([seed, stream, int(person)]))
            for k in range(_OVERLAP_IMAGES):  # draws the LFW tree never used: new photos of the same person
                rng = np.random.default_rng([seed, stream, int(person), 10_000 + k])
                image = render_face(traits, sample_nuisance(rng), rng, size=(size[1], size[0]))
                image.save(self.tree / ident / f"{k + 1:03d}.jpg", quality=self.quality)
            self.files[ident] = [f"{k + 1:03d}.jpg" for k in range(_OVERLAP_IMAGES)]
            self.rows.append(("eval_overlap", ident, lfw_people[int(person)], "new renders of an LFW person"))

    def _move(self, old: str, new: str) -> None:
        (self.tree / new).parent.mkdir(exist_ok=True)
        (self.tree / old).rename(self.tree / new)
        self.moves[old] = new


def _fix_quality(path: Path, moves: dict[str, str], copies: dict[str, str]) -> None:
    """Rename moved images in the quality file and give each copy its source's factors."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    rows = {line.split("\t", 1)[0]: line.split("\t", 1)[1] for line in lines[1:]}
    rows = {moves.get(p, p): v for p, v in rows.items()}
    for new, src in copies.items():
        rows[new] = rows[moves.get(src, src)]
    path.write_text("\n".join([lines[0], *(f"{p}\t{v}" for p, v in sorted(rows.items()))]) + "\n")


def inject_faults(tree: Path, faults: FaultSpec, seed: int, lfw_people: list[str], image_size: tuple[int, int],
                  jpeg_quality: int, lfw_stream: int, quality_file: Path | None = None) -> dict:
    """Plant `faults` in the training `tree` and write the ground truth; return counts for the summary.

    Args:
        tree: the CASIA-style training tree, as `write_synthetic_data` wrote it.
        faults: how many of each kind.
        seed: the synthetic set's seed (the faults draw from their own stream of it).
        lfw_people: the LFW tree's people, in render order (their index picks their traits).
        image_size: (height, width) of new renders.
        jpeg_quality: of new renders.
        lfw_stream: the random stream the LFW people were drawn from.
        quality_file: the tree's quality factors, updated for moved and copied images.
    """
    planter = _Planter(tree, np.random.default_rng([seed, _STREAM]), jpeg_quality)
    planter.merged(faults.merged_identities)
    planter.mislabeled(faults.mislabeled)
    planter.duplicates(faults.exact_duplicates, exact=True)
    planter.duplicates(faults.near_duplicates, exact=False)
    planter.eval_overlap(faults.eval_overlap, lfw_people, seed, image_size, lfw_stream)
    path = faults_path(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(r) + "\n" for r in [("kind", "item", "source", "detail"), *planter.rows]))
    if quality_file is not None:
        _fix_quality(quality_file, planter.moves, planter.copies)
    return {"faults": {kind: sum(r[0] == kind for r in planter.rows) for kind in FAULT_KINDS}}


def read_faults(tree: Path) -> list[dict[str, str]]:
    """The ground-truth rows of `tree`'s planted faults (kind, item, source, detail)."""
    path = faults_path(tree)
    if not path.is_file():
        raise FacetrainError(f"{path} does not exist; write the tree with synth.faults.* counts above 0")
    with path.open(newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))

