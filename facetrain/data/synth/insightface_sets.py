"""The synthetic trees in insightface's dataset-zoo layout: the training tree as a RecordIO pack, LFW as lfw.bin."""

from __future__ import annotations

import pickle
from pathlib import Path

from facetrain.data.formats.rec_convert import folder_to_rec
from facetrain.eval.protocols.lfw_pairs import parse_lfw_pairs

__all__ = ["write_bin", "write_insightface_sets"]


def write_bin(path: Path, images: list[bytes], same: list[bool]) -> None:
    """An insightface `.bin` validation set: the pickle of (2P encoded images, P booleans), pair i = images 2i, 2i+1."""
    path.write_bytes(pickle.dumps((list(images), [bool(s) for s in same]), protocol=4))


def write_insightface_sets(out: Path, casia: Path, lfw: Path) -> dict:
    """`out/train.rec`, `train.idx`, `property`, `train.lst` from the `casia` tree and `out/lfw.bin` from the
    `lfw` tree's pairs.txt (in file order, so its 10 folds of consecutive pairs are pairs.txt's folds)."""
    summary = folder_to_rec(casia, out, overwrite=True, progress=False)
    pairs = parse_lfw_pairs(lfw / "pairs.txt")
    images = [(lfw / p).read_bytes() for pair in zip(pairs.left, pairs.right, strict=True) for p in pair]
    write_bin(out / "lfw.bin", images, pairs.same.tolist())
    return {"insightface_images": summary["images"], "insightface_pairs": len(pairs)}
