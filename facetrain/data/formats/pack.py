"""`facetrain data pack`: a folder-of-identities tree → a pack (a few large shard files + an index).

Two formats (docs/data.md has the measurements that chose the default):
- `raw`: decoded uint8 crops, [3, H, W] each, back to back; read by memory-mapping, no decoding.
- `jpeg`: the files' original encoded bytes back to back; read with one pread, decoded as the
  folder loader decodes them.
Either way a sample is located by (shard, offset, length) in `index.npy`; no file is opened per image.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from facetrain.atomic import atomic_write, check_apart
from facetrain.config import abs_path, check_count
from facetrain.data.formats.file_index import scan_identity_folders
from facetrain.data.images.image_io import ImageReadError, decode_image, read_image
from facetrain.errors import FacetrainError

__all__ = ["INDEX_DTYPE", "PACK_FORMATS", "pack", "pack_tree"]

PACK_FORMATS = ("raw", "jpeg")
META_NAME, INDEX_NAME, PATHS_NAME = "pack.json", "index.npy", "paths.npy"
INDEX_DTYPE = np.dtype([("label", "<i4"), ("shard", "<i4"), ("offset", "<i8"), ("length", "<i8")])
_VERSION = 1


def _encode_chunk(args) -> list[tuple[bytes | None, str]]:
    """Each file's bytes for the pack, or (None, reason) when it cannot be read."""
    root, rels, fmt, size, fit = args
    out = []
    for rel in rels:
        try:
            if fmt == "raw":
                out.append((read_image(root / rel, size, fit).numpy().tobytes(), ""))
            else:
                data = (root / rel).read_bytes()
                decode_image(data, name=rel)  # packs hold only images that decode
                out.append((data, ""))
        except (ImageReadError, OSError) as err:
            text = str(err)
            out.append((None, text[text.find("(") + 1 : text.rfind(")")] if "(" in text else text))
    return out


class _ShardWriter:
    """Appends records to shard-NNNNN files, starting a new one past `shard_bytes`."""

    def __init__(self, folder: Path, suffix: str, shard_bytes: int):
        self.folder, self.suffix, self.shard_bytes = folder, suffix, shard_bytes
        self.shards: list[str] = []
        self._file, self._size = None, 0

    def write(self, data: bytes) -> tuple[int, int]:
        if self._file is None or self._size + len(data) > self.shard_bytes:
            self.close()
            self.shards.append(f"shard-{len(self.shards):05d}.{self.suffix}")
            self._file, self._size = open(self.folder / self.shards[-1], "wb"), 0  # noqa: SIM115
        offset = self._size
        self._file.write(data)
        self._size += len(data)
        return len(self.shards) - 1, offset

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def pack_tree(src: Path, out: Path, fmt: str = "raw", size: tuple[int, int] = (112, 96), fit: str = "resize",
              workers: int = 2, shard_mb: float = 1024, overwrite: bool = False, progress: bool = True,
              chunk: int = 256) -> dict:
    """Pack every readable image of `src` into `out`; return a summary (also in `out/pack.json`).

    Args:
        src: a folder of identity folders (usually the aligned tree).
        out: the pack folder to write (written under a hidden temporary name, renamed when complete).
        fmt: `raw` (decoded crops at `size`) or `jpeg` (original bytes).
        size: (height, width) of `raw` crops; `jpeg` keeps the files' own size.
        fit: how `raw` brings images to `size` (`resize` or `crop`), as the training loader does.
        workers: decoding processes.
        shard_mb: shard size in MiB.
        overwrite: replace an existing pack.
        progress: show a progress bar.
        chunk: images per task.
    """
    if fmt not in PACK_FORMATS:
        raise FacetrainError(f"pack.format={fmt!r} is not known; use one of {', '.join(PACK_FORMATS)}")
    if not isinstance(size, Sequence) or len(size) != 2:
        raise FacetrainError(f"pack.size={size} must be [height, width] (the training input_size)")
    for k, side in enumerate(size):
        check_count(f"pack.size[{k}]", side, 1, "the crops' height and width")
    if isinstance(shard_mb, bool) or not isinstance(shard_mb, int | float) or not shard_mb > 0:
        raise FacetrainError(f"pack.shard_mb={shard_mb} must be a number above 0 (the shard file size in MiB)")
    check_apart(src, out, "pack")
    src, out = src.resolve(), out.resolve()
    if out.exists() and not overwrite:
        raise FacetrainError(f"{out} exists; pass pack.overwrite=true to replace it or pack.out=... elsewhere")
    tree = scan_identity_folders(src, progress=progress)
    size = (int(size[0]), int(size[1]))
    meta: dict = {}
    # the pack appears under its name only once complete: a killed run leaves no half pack to train on, and an
    # old pack (overwrite=true) is replaced only then
    atomic_write(out, lambda tmp: meta.update(_write_pack(tmp, src, tree, fmt, size, fit, shard_mb, workers, chunk,
                                                          progress)))
    return meta


def _write_pack(tmp: Path, src: Path, tree, fmt: str, size: tuple[int, int], fit: str, shard_mb: float,
                workers: int, chunk: int, progress: bool) -> dict:
    tmp.mkdir(parents=True)
    tasks = [(src, tree.paths[i : i + chunk], fmt, size, fit) for i in range(0, len(tree.paths), chunk)]
    writer = _ShardWriter(tmp, "u8" if fmt == "raw" else "jpg.bin", int(float(shard_mb) * 2**20))
    records, paths, bad = [], [], list(tree.bad)
    with tqdm(total=len(tree.paths), desc=f"pack {fmt}", unit="img", disable=not progress) as bar, \
            ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        for start, results in zip(range(0, len(tree.paths), chunk), pool.map(_encode_chunk, tasks), strict=True):
            for k, (data, reason) in enumerate(results):
                rel = tree.paths[start + k]
                if data is None:
                    bad.append((rel, reason))
                    continue
                shard, offset = writer.write(data)
                records.append((tree.labels[start + k], shard, offset, len(data)))
                paths.append(rel)
            bar.update(len(results))
    writer.close()
    if not records:
        raise FacetrainError(f"no readable image under {src}; nothing to pack")
    np.save(tmp / INDEX_NAME, np.array(records, dtype=INDEX_DTYPE))
    np.save(tmp / PATHS_NAME, np.array(paths, dtype=np.bytes_))
    meta = {"version": _VERSION, "format": fmt, "size": list(size) if fmt == "raw" else None,
            "fit": fit if fmt == "raw" else None, "source": str(src), "images": len(records),
            "classes": tree.classes, "shards": writer.shards, "bad": sorted(bad),
            "bytes": int(sum(r[3] for r in records))}
    (tmp / META_NAME).write_text(json.dumps(meta) + "\n")
    return meta


def pack(cfg: DictConfig) -> dict:
    """The `pack` data action (configs/data.yaml `pack:` section)."""
    p = cfg.pack
    if not abs_path(p.src).is_dir():
        raise FacetrainError(f"pack.src={abs_path(p.src)} is not a folder; point pack.src=... at an aligned tree of "
                             "identity folders (`facetrain data align` writes one)")
    meta = pack_tree(abs_path(p.src), abs_path(p.out), str(p.format), p.size, str(p.fit),
                     int(p.workers), p.shard_mb, bool(p.overwrite), bool(p.progress))
    print(f"packed {meta['images']} images of {len(meta['classes'])} identities into {abs_path(p.out)} "
          f"({meta['format']}, {len(meta['shards'])} shard(s), {meta['bytes'] / 2**20:.0f} MiB); "
          f"{len(meta['bad'])} unreadable files skipped")
    return meta
