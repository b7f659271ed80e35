"""Broken files of scraped datasets: found by decoding (up front) or when read (lazily), and logged."""

from __future__ import annotations

import fcntl
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from facetrain.data.images.image_io import ImageReadError, read_image

__all__ = ["BadFileLog", "check_image", "find_unreadable"]

BAD_FILES_NAME = "bad_files.tsv"


def check_image(path: Path) -> str | None:
    """None when `path` decodes fully as an image, else the reason it does not."""
    try:
        read_image(path)
    except ImageReadError as err:
        return _reason(err)
    return None


def _reason(err: ImageReadError) -> str:
    text = str(err)
    return text[text.find("(") + 1 : text.rfind(")")] if "(" in text else text


def _check_chunk(args: tuple[str, list[str]]) -> list[tuple[str, str]]:
    root, rels = args
    found = []
    for rel in rels:
        reason = check_image(Path(root) / rel)
        if reason is not None:
            found.append((rel, reason))
    return found


def find_unreadable(root: Path, paths: list[str], workers: int = 2, progress: bool = True,
                    chunk: int = 256) -> list[tuple[str, str]]:
    """(relative path, reason) of every file under `root` that does not decode, in parallel.

    Args:
        root: the tree's top folder.
        paths: the files to check, relative to `root`.
        workers: processes (1 checks in this process).
        progress: show a progress bar.
        chunk: files per task.
    """
    tasks = [(str(root), paths[i : i + chunk]) for i in range(0, len(paths), chunk)]
    found: list[tuple[str, str]] = []
    with tqdm(total=len(paths), desc="verify images", unit="img", disable=not progress) as bar:
        if workers <= 1:
            results = map(_check_chunk, tasks)
        else:
            pool = ProcessPoolExecutor(max_workers=workers)
            results = pool.map(_check_chunk, tasks)
        for task, res in zip(tasks, results, strict=True):
            found += res
            bar.update(len(task[1]))
        if workers > 1:
            pool.shutdown()
    return sorted(found)


class BadFileLog:
    """`path<TAB>reason` lines in `<run_dir>/bad_files.tsv`, one per file however often it is met.

    Each data-loader worker process keeps its own memory of the files it found broken, so two workers
    (or the workers of a later epoch) meet the same file again. The file itself is deduplicated when
    written: the writer holds an exclusive lock on it, reads the paths already listed and appends only
    new ones. Deduplicating on write rather than when reading keeps the file right at every moment, for
    a user reading it during the run and for a run that is killed before it could clean up.
    """

    def __init__(self, path: Path | None = None):
        self.path = path

    def write(self, entries: list[tuple[str, str]]) -> None:
        if self.path is None or not entries:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
            listed = {line.split("\t", 1)[0] for line in _read_all(fd).splitlines()}
            new = dict(entries)
            text = "".join(f"{p}\t{r}\n" for p, r in new.items() if p not in listed)
            if text:
                os.write(fd, text.encode())
        finally:
            os.close(fd)

    def read(self) -> list[tuple[str, str]]:
        if self.path is None or not self.path.exists():
            return []
        return [tuple(line.split("\t", 1)) for line in self.path.read_text().splitlines() if line]


def _read_all(fd: int) -> str:
    """The whole file behind `fd`, from its start (an O_APPEND descriptor still reads where it is told)."""
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks).decode(errors="replace")
