"""Write synthetic training and evaluation trees laid out exactly like CASIA-WebFace, LFW (+ BLUFR lists), YTF, IJB-A,
IJB-C, insightface's zoo (RecordIO + the five .bin sets) and RFW."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from tqdm import tqdm

from facetrain.data.synth.blufr_lists import write_blufr_lists
from facetrain.data.synth.faults import FaultSpec, inject_faults
from facetrain.data.synth.identity import sample_identity
from facetrain.data.synth.ijba_tree import write_ijba
from facetrain.data.synth.ijbc_tree import write_ijbc
from facetrain.data.synth.insightface_sets import write_insightface_sets
from facetrain.data.synth.names import person_names
from facetrain.data.synth.nuisance import sample_nuisance
from facetrain.data.synth.pair_counts import cross_pairs
from facetrain.data.synth.quality import quality_path, write_quality
from facetrain.data.synth.render import render_face
from facetrain.data.synth.rfw_tree import write_rfw
from facetrain.data.synth.ytf_tree import write_ytf
from facetrain.errors import FacetrainError

__all__ = ["SynthSpec", "write_synthetic_data", "lfw_pairs"]

_TRAIN, _EVAL = 1, 2  # random streams: training and evaluation people never share traits' draws
_OPTIONAL = ("blufr_", "ytf_", "ijba_", "ijbc_", "insightface", "rfw_")  # spec fields of the optional trees


@dataclass(frozen=True)
class SynthSpec:
    """What `facetrain data synth` writes (see configs/data.yaml for the meaning of each field)."""

    seed: int = 0
    image_size: tuple[int, int] = (112, 96)  # (height, width)
    train_identities: int = 400
    train_min_images: int = 10
    train_max_images: int = 60
    lfw_folds: int = 10
    lfw_pairs_per_fold: int = 100
    lfw_identities_per_fold: int = 50
    lfw_max_images: int = 8
    jpeg_quality: int = 90
    # optional evaluation trees (0 = not written, so existing casia/lfw trees stay byte-identical)
    blufr_trials: int = 0
    ytf_splits: int = 0
    ytf_pairs_per_split: int = 25
    ytf_identities_per_split: int = 20
    ytf_max_videos: int = 4
    ytf_frames: int = 6
    ijba_splits: int = 0
    ijba_subjects: int = 60
    ijba_templates: int = 3
    ijba_impostor_ratio: int = 5
    ijbc_subjects: int = 0
    ijbc_templates: int = 3
    ijbc_impostor_ratio: int = 20
    insightface: bool = False  # also casia as a RecordIO pack and LFW as lfw.bin, in <out>/faces_synth
    insightface_pairs_per_fold: int = 0  # and stand-ins for cfp_fp, agedb_30, calfw, cplfw .bin (0 = none)
    rfw_pairs_per_fold: int = 0  # an RFW-shaped tree in <out>/rfw: four groups of 10 folds of n + n pairs (0 = none)
    rfw_identities_per_fold: int = 12
    rfw_max_images: int = 5
    faults: FaultSpec = FaultSpec()  # dirt planted in casia for `facetrain data audit` to find (none by default)


def _render_person(args) -> int:
    """Render all images of one person into `folder` (a worker-process task)."""
    stream, seed, person, count, folder, pattern, size, quality = args
    ident = sample_identity(np.random.default_rng([seed, stream, person]))
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        rng = np.random.default_rng([seed, stream, person, k + 1])
        image = render_face(ident, sample_nuisance(rng), rng, size=(size[1], size[0]))
        image.save(folder / pattern.format(k + 1), quality=quality)
    return count


def _long_tail_counts(rng: np.random.Generator, n: int, low: int, high: int) -> list[int]:
    """Images per person: many with few, a few with many (as in scraped celebrity data)."""
    return [int(low + (high - low) * u**2.5) for u in rng.random(n)]


def _pool(workers: int):
    """Worker processes, or (workers <= 1) none: mapping in this process never forks a process whose thread
    pools (torch's, BLAS's) may hold a lock the child would wait on forever."""
    if workers <= 1:
        return contextlib.nullcontext(SimpleNamespace(map=lambda fn, tasks, chunksize=1: map(fn, tasks)))
    return ProcessPoolExecutor(max_workers=workers)


def _render_all(tasks: list, workers: int, desc: str) -> None:
    with _pool(workers) as pool, tqdm(total=sum(t[3] for t in tasks), desc=desc) as bar:
        for done in pool.map(_render_person, tasks, chunksize=4):
            bar.update(done)


def _run_tasks(workers: int, fn: Callable, tasks: list, total: int, desc: str) -> list:
    """fn over tasks in worker processes, results in task order (so the output is deterministic)."""
    results = []
    with _pool(workers) as pool, tqdm(total=total, desc=desc) as bar:
        for result in pool.map(fn, tasks, chunksize=2):
            results.append(result)
            bar.update(min(total // max(len(tasks), 1), total - bar.n))
        bar.update(total - bar.n)
    return results


def lfw_pairs(counts: dict[str, int], fold_names: list[list[str]], n: int, rng: np.random.Generator,
              tree: str = "LFW", keys: str = "synth.lfw") -> list[tuple]:
    """n matched and n mismatched pairs per fold, people never crossing folds (as in LFW View 2); when they do
    not fit, the message names `tree` and the settings `keys`_* (RFW draws its groups' pairs here too)."""
    pairs = []
    for fold, names in enumerate(fold_names):
        matched = [(a, i, j) for a in names for i in range(1, counts[a] + 1) for j in range(i + 1, counts[a] + 1)]
        if len(matched) < n:
            raise FacetrainError(f"{tree} fold {fold + 1} has only {len(matched)} matched pairs; raise "
                                 f"{keys}_max_images or lower {keys}_pairs_per_fold")
        chosen = sorted(matched[k] for k in rng.choice(len(matched), n, replace=False))
        possible = cross_pairs([counts[a] for a in names])
        if possible < n:  # the draw below would never end
            raise FacetrainError(f"{tree} fold {fold + 1} has only {possible} mismatched pairs; raise "
                                 f"{keys}_identities_per_fold or lower {keys}_pairs_per_fold")
        mismatched: set[tuple] = set()
        while len(mismatched) < n:
            a, b = rng.choice(len(names), 2, replace=False)
            na, nb = sorted((names[a], names[b]))
            mismatched.add((na, int(rng.integers(1, counts[na] + 1)), nb, int(rng.integers(1, counts[nb] + 1))))
        pairs += chosen + sorted(mismatched)
    return pairs


def _write_pairs(path: Path, pairs: list[tuple], folds: int, n: int) -> None:
    lines = [f"{folds}\t{n}"] + ["\t".join(str(x) for x in p) for p in pairs]
    path.write_text("\n".join(lines) + "\n")


def _lfw_tasks(out: Path, spec: SynthSpec) -> tuple[list, dict[str, int], list[str], np.random.Generator]:
    """The LFW tree's render tasks, its people's image counts and names, and the generator the pairs go on with."""
    rng = np.random.default_rng([spec.seed, _EVAL])
    people = spec.lfw_folds * spec.lfw_identities_per_fold
    names = person_names(people, spec.seed + 1_000)
    # LFW-like counts: most people have few images; everyone has at least two here so folds fill.
    counts = dict(zip(names, _long_tail_counts(rng, people, 2, spec.lfw_max_images + 1), strict=True))
    tasks = [(_EVAL, spec.seed, i, counts[name], out / name, name + "_{:04d}.jpg", spec.image_size, spec.jpeg_quality)
             for i, name in enumerate(names)]
    return tasks, counts, names, rng


def _lfw_plan(out: Path, spec: SynthSpec) -> tuple[list, dict[str, int], list[tuple]]:
    """The LFW tree's render tasks, image counts and pairs (pairs.txt's rows), all decided by the spec alone."""
    tasks, counts, names, rng = _lfw_tasks(out, spec)
    folds = [names[f::spec.lfw_folds] for f in range(spec.lfw_folds)]
    return tasks, counts, lfw_pairs(counts, folds, spec.lfw_pairs_per_fold, rng)


def _write_lfw(out: Path, spec: SynthSpec, workers: int) -> int:
    tasks, counts, pairs = _lfw_plan(out, spec)
    _render_all(tasks, workers, "synth lfw")
    _write_pairs(out / "pairs.txt", pairs, spec.lfw_folds, spec.lfw_pairs_per_fold)
    return sum(counts.values())


def _casia_tasks(out: Path, spec: SynthSpec) -> list:
    rng = np.random.default_rng([spec.seed, _TRAIN])
    counts = _long_tail_counts(rng, spec.train_identities, spec.train_min_images, spec.train_max_images + 1)
    # CASIA-WebFace names its identity folders with 7-digit numbers and its images 001.jpg, 002.jpg, ...
    return [(_TRAIN, spec.seed, i, c, out / f"{i + 1:07d}", "{:03d}.jpg", spec.image_size, spec.jpeg_quality)
            for i, c in enumerate(counts)]


def _write_casia(out: Path, spec: SynthSpec, workers: int) -> int:
    tasks = _casia_tasks(out, spec)
    _render_all(tasks, workers, "synth casia")
    return sum(t[3] for t in tasks)


def _write_quality_files(out: Path, spec: SynthSpec) -> None:
    """quality/casia.tsv and quality/lfw.tsv where missing (recomputed from the draws: nothing is re-rendered)."""
    for name, tasks in (("casia", lambda: _casia_tasks(out / "casia", spec)),
                        ("lfw", lambda: _lfw_tasks(out / "lfw", spec)[0])):
        if (out / name).is_dir() and not quality_path(out / name).is_file():
            write_quality(out / name, tasks())


def _spec_dict(spec: SynthSpec, prefixes: tuple[str, ...] | None = None) -> dict:
    """The spec as JSON-able values: the base fields (casia/lfw), or the fields of one optional tree."""
    items = {k: list(v) if isinstance(v, tuple) else v for k, v in spec.__dict__.items()}
    items["faults"] = dict(spec.faults.__dict__) if spec.faults else None  # a clean tree's marker stays as it was
    if prefixes is None:
        return {k: v for k, v in items.items() if not k.startswith(_OPTIONAL) and not (k == "faults" and v is None)}
    return {k: v for k, v in items.items() if k.startswith(prefixes) or k in ("seed", "image_size", "jpeg_quality")}


def write_synthetic_data(out: Path, spec: SynthSpec, workers: int = 2, overwrite: bool = False) -> dict:
    """Write `out/casia` (training), `out/lfw` (evaluation + pairs.txt) and the optional trees; return a summary.

    A finished tree carries `synth.json`; an existing tree made with the same spec is kept as is. The
    optional trees (BLUFR lists, YTF, IJB-A, IJB-C) carry their own marker, so adding one later leaves casia/lfw alone.
    """
    marker = out / "synth.json"
    wanted = {"spec": _spec_dict(spec)}
    if out.exists() and not out.is_dir():
        raise FacetrainError(f"synth.out={out} is a file; give a folder for the synthetic trees")
    if marker.exists() and not overwrite:
        done = json.loads(marker.read_text())
        if done.get("spec") != wanted["spec"]:
            raise FacetrainError(f"{out} holds synthetic data made with other settings; pass synth.overwrite=true "
                                 "to replace it or synth.out=... to write elsewhere")
        summary = done | {"reused": True}
    else:
        if out.exists() and (overwrite or any(out.iterdir())):
            if not overwrite and not marker.exists():
                raise FacetrainError(f"{out} exists and is not a finished synthetic tree (no synth.json): choose "
                                     "another synth.out, or, if it is a synthesis cut short, pass synth.overwrite=true "
                                     "(it deletes the folders casia, lfw, quality and faults in it)")
            _remove_base_trees(out)  # their quality and faults lists too: kept, they would describe the old trees
            marker.unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        try:
            summary = wanted | {
                "train_images": _write_casia(out / "casia", spec, workers),
                "train_identities": spec.train_identities,
                "lfw_images": _write_lfw(out / "lfw", spec, workers),
                "lfw_pairs": 2 * spec.lfw_folds * spec.lfw_pairs_per_fold,
            }
            if spec.faults:  # the counts are the tree's as planted: copies added, identities split off
                summary |= _inject_faults(out, spec)
                folders = [d for d in (out / "casia").iterdir() if d.is_dir()]
                summary |= {"train_images": sum(len(list(d.glob("*.jpg"))) for d in folders),
                            "train_identities": len(folders)}
        except BaseException:  # no half tree a later `facetrain train` (data=synth) would take as written
            _remove_base_trees(out)
            raise
        marker.write_text(json.dumps(summary, indent=2) + "\n")
    _write_quality_files(out, spec)
    return summary | _write_optional_trees(out, spec, workers, overwrite)


def _remove_base_trees(out: Path) -> None:
    for sub in ("casia", "lfw", "quality", "faults"):
        shutil.rmtree(out / sub, ignore_errors=True)


def _inject_faults(out: Path, spec: SynthSpec) -> dict:
    """Plant `spec.faults` in the fresh casia tree (its quality file written first, then kept in step)."""
    _write_quality_files(out, spec)
    names = _lfw_tasks(out / "lfw", spec)[2]
    return inject_faults(out / "casia", spec.faults, spec.seed, names, spec.image_size, spec.jpeg_quality, _EVAL,
                         quality_path(out / "casia"))


def _lfw_counts(lfw: Path) -> dict[str, int]:
    """Images per person of an LFW-layout tree (what BLUFR's image list enumerates)."""
    return {d.name: len(list(d.glob("*.jpg"))) for d in sorted(lfw.iterdir()) if d.is_dir()}


def _standins(spec: SynthSpec) -> dict | None:
    """The five-set stand-ins' settings (as many folds as LFW's pairs.txt), or None when not asked for."""
    if not spec.insightface_pairs_per_fold:
        return None
    return {"seed": spec.seed, "folds": spec.lfw_folds, "n": spec.insightface_pairs_per_fold,
            "size": spec.image_size, "quality": spec.jpeg_quality}


def _write_optional_trees(out: Path, spec: SynthSpec, workers: int, overwrite: bool) -> dict:
    """BLUFR lists over the LFW tree, the YTF, IJB-A, IJB-C, insightface and RFW trees, each when asked for."""
    run = partial(_run_tasks, workers)
    writers = {
        "blufr_lfw": (spec.blufr_trials, ("blufr_",), lambda d: write_blufr_lists(
            d, _lfw_counts(out / "lfw"), spec.seed, spec.blufr_trials)),
        "ytf": (spec.ytf_splits, ("ytf_",), lambda d: write_ytf(
            d, spec.seed, spec.ytf_splits, spec.ytf_pairs_per_split, spec.ytf_identities_per_split,
            spec.ytf_max_videos, spec.ytf_frames, spec.image_size, spec.jpeg_quality, run)),
        "ijba": (spec.ijba_splits, ("ijba_",), lambda d: write_ijba(
            d, spec.seed, spec.ijba_splits, spec.ijba_subjects, spec.ijba_templates, spec.ijba_impostor_ratio,
            spec.jpeg_quality, run)),
        "ijbc": (spec.ijbc_subjects, ("ijbc_",), lambda d: write_ijbc(
            d, spec.seed, spec.ijbc_subjects, spec.ijbc_templates, spec.ijbc_impostor_ratio, spec.jpeg_quality, run)),
        "faces_synth": (spec.insightface, ("insightface",), lambda d: write_insightface_sets(
            d, out / "casia", out / "lfw", _lfw_plan(out / "lfw", spec)[2], _standins(spec), run)),
        "rfw": (spec.rfw_pairs_per_fold, ("rfw_",), lambda d: write_rfw(
            d, spec.seed, spec.rfw_pairs_per_fold, spec.rfw_identities_per_fold, spec.rfw_max_images, spec.image_size,
            spec.jpeg_quality, run, lfw_pairs)),
    }
    summary: dict = {}
    for name, (enabled, prefixes, write) in writers.items():
        if not enabled:
            continue
        folder, wanted = out / name, _spec_dict(spec, prefixes)
        marker = folder / "synth.json"
        if marker.exists() and not overwrite:
            done = json.loads(marker.read_text())
            if done.get("spec") == wanted:
                summary |= done["summary"]
                continue
            raise FacetrainError(f"{folder} was made with other settings; pass synth.overwrite=true to replace it")
        shutil.rmtree(folder, ignore_errors=True)
        result = write(folder)
        marker.write_text(json.dumps({"spec": wanted, "summary": result}, indent=2) + "\n")
        summary |= result
    return summary
