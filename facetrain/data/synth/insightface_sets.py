"""The synthetic trees in insightface's dataset-zoo layout: the training tree as a RecordIO pack, LFW as lfw.bin,
and stand-ins for cfp_fp.bin, agedb_30.bin, calfw.bin, cplfw.bin (`bin_standins.py`): the five-set benchmark."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

from facetrain.data.formats.rec_convert import folder_to_rec
from facetrain.data.synth.bin_standins import write_standins

__all__ = ["write_bin", "write_insightface_sets"]


def write_bin(path: Path, images: list[bytes], same: list[bool]) -> None:
    """An insightface `.bin` validation set: the pickle of (2P encoded images, P booleans), pair i = images 2i, 2i+1."""
    path.write_bytes(pickle.dumps((list(images), [bool(s) for s in same]), protocol=4))


def _pair_files(row: tuple) -> tuple[str, str, bool]:
    """A pairs.txt row as the synthetic writer made it: (name, i, j) matched or (name1, i, name2, j) mismatched."""
    a, i, b, j = row if len(row) == 4 else (row[0], row[1], row[0], row[2])
    return f"{a}/{a}_{i:04d}.jpg", f"{b}/{b}_{j:04d}.jpg", len(row) == 3


def write_insightface_sets(out: Path, casia: Path, lfw: Path, pairs: list[tuple], standins: dict | None = None,
                           run: Callable | None = None) -> dict:
    """`out/train.rec`, `train.idx`, `property`, `train.lst` from the `casia` tree, `out/lfw.bin` from the
    `lfw` tree's `pairs` (pairs.txt's rows in file order, so its 10 folds of consecutive pairs are pairs.txt's)
    and, given `standins` (seed, folds, n, size, quality of `bin_standins.write_standins`) and `run` (the
    worker pool), the other four sets of the five-set benchmark."""
    summary = folder_to_rec(casia, out, overwrite=True, progress=False)
    files = [_pair_files(row) for row in pairs]
    images = [(lfw / path).read_bytes() for left, right, _ in files for path in (left, right)]
    write_bin(out / "lfw.bin", images, [same for _, _, same in files])
    result = {"insightface_images": summary["images"], "insightface_pairs": len(files)}
    if standins:
        result |= write_standins(out, run=run, write_bin=write_bin, **standins)
    return result
