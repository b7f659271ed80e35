"""The file index of a folder-of-identities tree, built once (with a progress bar) and cached by a tree fingerprint."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from facetrain.atomic import atomic_write
from facetrain.errors import FacetrainError

__all__ = ["IMAGE_EXTENSIONS", "FolderIndex", "load_index", "scan_identity_folders", "tree_fingerprint"]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")
_CACHE_VERSION = 1


@dataclass
class FolderIndex:
    """Relative image paths, their labels, the identity name of each label, and the files found broken.

    `bad` holds (relative path, reason) of entries that carry an image extension but cannot be
    images: zero-byte files and directories at scan time, plus whatever `verify` failed to decode.
    """

    paths: list[str]
    labels: list[int]
    classes: list[str]
    bad: list[tuple[str, str]] = field(default_factory=list)
    verified: bool = False


def _identity_dirs(root: Path) -> list[os.DirEntry]:
    if not root.is_dir():
        raise FacetrainError(
            f"data folder {root} does not exist; run `facetrain data synth` for the demo data "
            "or point data.root=... at a folder of identity folders"
        )
    with os.scandir(root) as it:
        dirs = [e for e in it if e.is_dir() and not e.name.startswith(".")]
    return sorted(dirs, key=lambda e: e.name)


def tree_fingerprint(root: Path) -> str:
    """A hash of the identity folders' names and modification times.

    Adding, removing or renaming a file changes its folder's mtime, so any such change re-indexes;
    it costs one stat per identity, not per image.
    """
    h = hashlib.sha1(str(root).encode())
    for entry in _identity_dirs(root):
        h.update(f"{entry.name}\0{entry.stat().st_mtime_ns}\n".encode())
    return h.hexdigest()


def scan_identity_folders(root: Path, progress: bool = False) -> FolderIndex:
    """List `root/<identity>/<image>` files (any of IMAGE_EXTENSIONS, case-insensitive).

    Labels follow the sorted identity names; files are sorted by name within an identity. An
    identity folder without images gets no label.
    """
    paths, labels, classes, bad = [], [], [], []
    for entry in tqdm(_identity_dirs(root), desc=f"index {root.name}", unit="identity", disable=not progress):
        files = []
        with os.scandir(entry.path) as it:
            for f in it:
                if os.path.splitext(f.name)[1].lower() not in IMAGE_EXTENSIONS:
                    continue
                rel = f"{entry.name}/{f.name}"
                if f.is_dir():
                    bad.append((rel, "a directory with an image name"))
                elif f.stat().st_size == 0:
                    bad.append((rel, "empty file (0 bytes)"))
                else:
                    files.append(f.name)
        if files:
            label = len(classes)
            classes.append(entry.name)
            paths += [f"{entry.name}/{name}" for name in sorted(files)]
            labels += [label] * len(files)
    if not paths:
        raise FacetrainError(
            f"no images found under {root}; expected {root}/<identity>/<image>.jpg "
            f"(extensions: {', '.join(IMAGE_EXTENSIONS)})"
        )
    return FolderIndex(paths=paths, labels=labels, classes=classes, bad=sorted(bad))


def _cache_file(cache_dir: Path, root: Path) -> Path:
    return cache_dir / f"index-{hashlib.sha1(str(root).encode()).hexdigest()[:16]}.json"


def _read_cache(path: Path, fingerprint: str) -> FolderIndex | None:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if saved.get("version") != _CACHE_VERSION or saved.get("fingerprint") != fingerprint:
        return None
    classes, files = saved["classes"], saved["files"]
    paths = [f"{name}/{f}" for name, fs in zip(classes, files, strict=True) for f in fs]
    labels = [label for label, fs in enumerate(files) for _ in fs]
    return FolderIndex(paths, labels, classes, [tuple(b) for b in saved["bad"]], saved["verified"])


def _write_cache(path: Path, fingerprint: str, index: FolderIndex) -> None:
    files: list[list[str]] = [[] for _ in index.classes]
    for p, label in zip(index.paths, index.labels, strict=True):
        files[label].append(p.split("/", 1)[1])
    saved = {"version": _CACHE_VERSION, "fingerprint": fingerprint, "classes": index.classes, "files": files,
             "bad": index.bad, "verified": index.verified}
    text = json.dumps(saved, separators=(",", ":"))
    atomic_write(path, lambda tmp: tmp.write_text(text))  # a concurrent reader never sees half a file


def _drop_bad(index: FolderIndex, bad: list[tuple[str, str]]) -> FolderIndex:
    """The index without the newly found bad files; identities left without images lose their label."""
    gone = {p for p, _ in bad}
    kept = [(p, lab) for p, lab in zip(index.paths, index.labels, strict=True) if p not in gone]
    used = sorted({lab for _, lab in kept})
    relabel = {old: new for new, old in enumerate(used)}
    return FolderIndex([p for p, _ in kept], [relabel[lab] for _, lab in kept], [index.classes[i] for i in used],
                       sorted(index.bad + bad), verified=True)


def load_index(root: Path, cache_dir: Path | None = None, verify: bool = False, workers: int = 2,
               progress: bool = True) -> FolderIndex:
    """The tree's index from the cache when the tree is unchanged, else scanned (and cached).

    Args:
        root: the tree's top folder.
        cache_dir: where index files live (one per tree path); None scans every time.
        verify: decode every image once and drop the ones that fail (the result is cached too).
        workers: processes for `verify`.
        progress: show progress bars.

    Returns:
        The index; with `verify`, `bad` also lists the files that failed to decode.
    """
    fingerprint = tree_fingerprint(root) if cache_dir is not None else ""
    cache = _cache_file(cache_dir, root) if cache_dir is not None else None
    index = _read_cache(cache, fingerprint) if cache is not None else None
    if index is None:
        index = scan_identity_folders(root, progress=progress)
        log.info("indexed %s: %d images of %d identities", root, len(index.paths), len(index.classes))
    elif not (verify and not index.verified):
        return index
    if verify and not index.verified:
        from facetrain.data.selection.bad_files import find_unreadable

        index = _drop_bad(index, find_unreadable(root, index.paths, workers=workers, progress=progress))
    if cache is not None:
        _write_cache(cache, fingerprint, index)
    return index
