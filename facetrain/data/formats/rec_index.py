"""The image index of an insightface RecordIO pack: which `.idx` keys are images, where they lie, their labels.

Two layouts exist. With a header (insightface's zoo sets), record 0's labels (a, b) say that keys
1 .. a-1 are images and keys a .. b-1 are one record per identity whose labels (start, end) give that
identity's image keys; labels come from these ranges without reading an image. Without a header, every
key of the `.idx` is an image and its label is read from its image header. The class count is
`property`'s first field (`classes,height,width`) or else follows from the labels. A facetrain-written
pack also carries `train.lst` (`key<TAB>label<TAB>path`, im2rec's list) with the images' folder names.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facetrain.config import abs_path
from facetrain.data.formats.recordio import RecordError, parse_record, read_idx, unpack_payload
from facetrain.errors import FacetrainError

__all__ = ["LIST_NAME", "PROPERTY_NAME", "RecIndex", "RecFiles", "load_rec_index", "rec_files", "read_record"]

log = logging.getLogger(__name__)

PROPERTY_NAME, LIST_NAME = "property", "train.lst"
_LABEL_BYTES = 256  # enough for the header and a few extra labels: a label read does not read the image


@dataclass(frozen=True)
class RecFiles:
    """The files of a pack: `rec` and `idx` must exist; `property` and `lst` are optional."""

    rec: Path
    idx: Path
    property: Path
    lst: Path


def rec_files(root: str | Path) -> RecFiles:
    """The pack's files from `data.root`: a folder holding train.rec (and train.idx, property), or a .rec file."""
    root = abs_path(root)
    rec = root if root.suffix == ".rec" and root.is_file() else root / "train.rec"
    if not rec.is_file():
        if not root.exists():
            raise FacetrainError(f"data folder {root} does not exist; point data.root=... at an insightface pack "
                                 "folder (train.rec, train.idx, property), e.g. faces_webface_112x112")
        raise FacetrainError(f"{root} has no train.rec; data=rec reads insightface's RecordIO packs (a folder with "
                             "train.rec, train.idx and property, e.g. faces_webface_112x112)")
    idx = rec.with_suffix(".idx")
    if not idx.is_file():
        raise FacetrainError(f"{rec} has no index {idx.name} beside it; copy the pack's {idx.name} too (records are "
                             "found by the offsets it lists)")
    return RecFiles(rec, idx, rec.parent / PROPERTY_NAME, rec.with_suffix(".lst"))


def read_record(fd: int, offset: int, extent: int, need: int | None = None) -> bytes:
    """The payload of the record at `offset` (reading `extent` bytes, or fewer when only `need` are wanted)."""
    size = min(extent, _LABEL_BYTES) if need is not None else extent
    buf = os.pread(fd, size, offset)
    if not buf:
        raise RecordError(f"offset {offset} is past the end of the file (truncated file?)")
    return parse_record(buf, 0, need)[0]


@dataclass
class RecIndex:
    """The images of a pack in key order: key, byte offset and extent (bytes up to the next record), label."""

    files: RecFiles
    keys: np.ndarray
    offsets: np.ndarray
    extents: np.ndarray
    labels: np.ndarray
    classes: list[str]
    header: bool
    paths: dict[int, str] = field(default_factory=dict)  # key -> relative path, from train.lst
    bad: list[tuple[str, str]] = field(default_factory=list)
    image_size: tuple[int, int] | None = None  # (height, width) from `property`

    def name(self, key: int) -> str:
        """How a record is named in logs and bad_files.tsv: `train.rec:<key>`."""
        return f"{self.files.rec.name}:{key}"


def _extents(offsets: np.ndarray, file_size: int) -> np.ndarray:
    """Bytes from each offset to the next record's offset (or the end of the file)."""
    stops = np.unique(np.append(offsets, file_size))
    nxt = stops[np.minimum(np.searchsorted(stops, offsets, side="right"), len(stops) - 1)]
    return np.maximum(nxt - offsets, 0)


def _label_of(payload: bytes) -> int:
    label = unpack_payload(payload)[0].label
    if not np.isfinite(label) or label < 0 or label != int(label):
        raise RecordError(f"its label {label} is not a class number")
    return int(label)


def _read_labels(fd: int, files: RecFiles, keys, offsets, extents, progress: bool) -> tuple[np.ndarray, list]:
    """Each record's label from its image header (-1 and a bad entry when it cannot be read)."""
    labels, bad = np.full(len(keys), -1, dtype=np.int64), []
    for i in tqdm(range(len(keys)), desc=f"index {files.rec.name}", unit="img", disable=not progress,
                  mininterval=1.0):
        try:
            labels[i] = _label_of(read_record(fd, int(offsets[i]), int(extents[i]), need=32))
        except RecordError as err:
            bad.append((f"{files.rec.name}:{keys[i]}", str(err)))
    return labels, bad


class _Table:
    """The `.idx` as sorted arrays (a dict of millions of keys would cost ~100 bytes each)."""

    def __init__(self, keys: np.ndarray, offsets: np.ndarray, file_size: int):
        order = np.argsort(keys, kind="stable")
        self.keys, self.offsets = keys[order], offsets[order]
        self.extents = _extents(self.offsets, file_size)

    def positions(self, keys: np.ndarray) -> np.ndarray:
        """Each key's row, or -1 when the `.idx` does not list it."""
        rows = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[rows] == keys, rows, -1)

    def read(self, fd: int, key: int) -> bytes | None:
        """Record `key`'s payload, or None when it is not listed."""
        row = int(self.positions(np.array([key]))[0])
        return None if row < 0 else read_record(fd, int(self.offsets[row]), int(self.extents[row]))


def _read_ranges(fd: int, table: _Table, first: int, stop: int) -> list[tuple[int, int]] | None:
    """The (start, end) image keys of identity records first .. stop-1, or None when one cannot be read."""
    rows = table.positions(np.arange(first, stop, dtype=np.int64))
    if (rows < 0).any():
        return None
    ranges = []
    for offset, extent in zip(table.offsets[rows].tolist(), table.extents[rows].tolist(), strict=True):
        try:
            labels = unpack_payload(read_record(fd, offset, extent))[0].labels
        except RecordError:
            return None
        if len(labels) < 2:
            return None
        ranges.append((int(labels[0]), int(labels[1])))
    return ranges


def _read_property(files: RecFiles, labels: np.ndarray, found: int) -> tuple[int, tuple[int, int] | None]:
    """The class count and (height, width) of `property` (`classes,height,width`), else the labels' count."""
    if not files.property.is_file():
        return found, None
    text = files.property.read_text().strip()
    try:
        fields = [int(v) for v in text.split(",")]
    except ValueError:
        fields = []
    if len(fields) not in (1, 3):
        raise FacetrainError(f"{files.property}: {text!r} is not `classes,height,width`; fix the file or delete it "
                             "(the class count then follows from the labels)")
    top = int(labels.max()) if len(labels) else -1
    if top >= fields[0]:
        raise FacetrainError(f"{files.rec}: a record has label {top} but {files.property} says {fields[0]} classes; "
                             "fix the property file or delete it (the class count then follows from the labels)")
    return fields[0], (fields[1], fields[2]) if len(fields) == 3 else None


def _list_paths(files: RecFiles, keys: np.ndarray) -> dict[int, str]:
    """key -> relative path from train.lst, or {} when there is none or it is not im2rec's `key label path` list."""
    if not files.lst.is_file():
        return {}
    paths = {}
    for line in files.lst.read_text().splitlines():
        fields = line.split("\t")
        parts = fields[-1].split("/")
        try:
            paths[int(fields[0])] = fields[-1]
            float(fields[1])
        except (ValueError, IndexError):
            parts = []
        if len(parts) != 2 or not all(parts) or {".", ".."} & set(parts):  # never a path outside the tree
            log.warning("%s is not a `key<TAB>label<TAB>identity/file` list; naming images by key", files.lst)
            return {}
    return paths if all(int(k) in paths for k in keys) else {}


def _class_names(count: int, keys: np.ndarray, labels: np.ndarray, paths: dict[int, str]) -> list[str]:
    """Zero-padded label numbers (sorted names keep label order), or the identity folders train.lst names."""
    width = len(str(max(count - 1, 0)))
    names = [f"{c:0{width}d}" for c in range(count)]
    if paths:
        folder = {}
        for key, label in zip(keys.tolist(), labels.tolist(), strict=True):
            folder.setdefault(label, set()).add(paths[key].split("/")[0])
        if all(len(v) == 1 for v in folder.values()):
            for label, (name,) in folder.items():
                names[label] = name
    return names


def load_rec_index(root: str | Path, progress: bool = True) -> RecIndex:
    """Index a pack: its image records, their labels and class names, and the records found unreadable.

    Raises:
        FacetrainError: (one line) a missing file, a damaged `.idx` line, an unreadable record 0 or header,
            a `property` file that contradicts the labels.
    """
    files = rec_files(root)
    all_keys, all_offsets = read_idx(files.idx)
    fd = os.open(files.rec, os.O_RDONLY)
    try:
        table = _Table(all_keys, all_offsets, os.fstat(fd).st_size)
        header = _read_header(fd, files, table)
        bad: list[tuple[str, str]] = []
        rows = np.arange(len(table.keys))
        if header is not None:
            wanted = np.arange(1, header[0], dtype=np.int64)
            rows = table.positions(wanted)
            bad += [(f"{files.rec.name}:{k}", f"key {k} is an image by record 0 but missing from {files.idx.name}")
                    for k in wanted[rows < 0].tolist()]
            rows = rows[rows >= 0]
        keys, offsets, sizes = table.keys[rows], table.offsets[rows], table.extents[rows]
        labels = np.full(len(keys), -1, dtype=np.int64)
        ranges = _read_ranges(fd, table, header[0], header[1]) if header else None
        if header and ranges is None:
            log.warning("%s: the identity records %d..%d cannot all be read; taking labels from the image records",
                        files.rec, header[0], header[1] - 1)
        for label, (start, end) in enumerate(ranges or []):  # keys are sorted: each range is one slice
            labels[np.searchsorted(keys, start) : np.searchsorted(keys, end)] = label
        missing = labels < 0
        if missing.any():
            labels[missing], found_bad = _read_labels(fd, files, keys[missing], offsets[missing], sizes[missing],
                                                      progress)
            bad += found_bad
    finally:
        os.close(fd)
    good = labels >= 0
    keys, offsets, sizes, labels = keys[good], offsets[good], sizes[good], labels[good]
    if not len(keys):
        raise FacetrainError(f"{files.rec}: no readable image record (see the bad records: {bad[:3]}); "
                             "the pack is damaged — copy it again")
    found = len(ranges) if ranges else int(labels.max()) + 1
    count, image_size = _read_property(files, labels, found)
    paths = _list_paths(files, keys)
    return RecIndex(files, keys, offsets, sizes, labels, _class_names(count, keys, labels, paths), header is not None,
                    paths, sorted(bad), image_size)


def _read_header(fd: int, files: RecFiles, table: _Table) -> tuple[int, int] | None:
    """Record 0's (first identity key, end) when it is a header (flag > 0), else None (every key an image)."""
    try:
        payload = table.read(fd, 0)
        if payload is None:
            return None
        head = unpack_payload(payload)[0]
    except RecordError as err:
        raise FacetrainError(f"{files.rec}: record 0 cannot be read ({err}); the pack is damaged — copy "
                             "train.rec and train.idx again") from None
    if head.flag == 0:
        return None
    if len(head.labels) < 2 or not 1 <= head.labels[0] <= head.labels[1]:
        raise FacetrainError(f"{files.rec}: record 0 is a header with labels {list(head.labels)[:4]}, not the "
                             "(first identity key, end) insightface writes; the pack is damaged")
    return int(head.labels[0]), int(head.labels[1])
