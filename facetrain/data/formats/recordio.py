"""MXNet's RecordIO format (insightface's `train.rec` / `train.idx`), read and written without MXNet.

A record on disk: the magic word 0xced7230a, a length word (upper 3 bits: 0 whole record, 1 first,
2 middle, 3 last part; lower 29 bits: the part's length), the part's bytes, zero padding to 4 bytes.
A payload holding the magic word at a 4-byte boundary is written in parts split there, the magic word
itself dropped (the reader puts it back between parts). An image record's payload starts with the
image header `<IfQQ` (flag, label, id, id2); when flag > 0, `flag` float32 labels follow (the first is
the class); then the encoded image. The `.idx` file has one `key<TAB>offset` line per record.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetrain.errors import FacetrainError

__all__ = ["MAGIC", "ImageHeader", "RecordError", "RecordWriter", "frame_record", "pack_payload", "parse_record",
           "read_idx", "unpack_payload"]

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LENGTH_BITS = 29
_HEADER = struct.Struct("<IfQQ")
_WHOLE, _FIRST, _MIDDLE, _LAST = 0, 1, 2, 3


class RecordError(ValueError):
    """A record whose framing or image header is damaged (the reason is the message)."""


@dataclass(frozen=True)
class ImageHeader:
    """The image header of a record: `labels` holds `label` alone, or the `flag` extra labels when flag > 0."""

    flag: int
    labels: tuple[float, ...]
    id: int
    id2: int

    @property
    def label(self) -> float:
        return self.labels[0]


def frame_record(payload: bytes) -> bytes:
    """The bytes MXNet's writer puts on disk for one payload (split at aligned magic words, padded)."""
    if len(payload) >= 1 << _LENGTH_BITS:
        raise FacetrainError(f"a record of {len(payload)} bytes is too large for RecordIO (limit 2^29 bytes)")
    view = np.frombuffer(payload[: len(payload) // 4 * 4], dtype="<u4")
    cuts = (np.flatnonzero(view == MAGIC) * 4).tolist()
    out, start = bytearray(), 0
    for cut in cuts:
        out += _MAGIC_BYTES + struct.pack("<I", ((_FIRST if start == 0 else _MIDDLE) << _LENGTH_BITS) | (cut - start))
        out += payload[start:cut]
        start = cut + 4
    last = _LAST if cuts else _WHOLE
    out += _MAGIC_BYTES + struct.pack("<I", (last << _LENGTH_BITS) | (len(payload) - start)) + payload[start:]
    out += bytes(-len(payload) % 4)
    return bytes(out)


def parse_record(buf: bytes | memoryview, offset: int = 0, need: int | None = None) -> tuple[bytes, int]:
    """The payload of the record at `offset` of `buf`, and the offset just past it.

    With `need`, `buf` may end inside the record: its first `need` payload bytes (or more) are enough
    (reading a label without reading the image).

    Raises:
        RecordError: a wrong magic word, a part flag out of order, or a record running past the buffer.
    """
    parts, expect_first = [], True
    while True:
        if offset + 8 > len(buf):
            raise RecordError(f"the file ends inside the record at byte {offset} of it (truncated file?)")
        magic, word = struct.unpack_from("<II", buf, offset)
        if magic != MAGIC:
            raise RecordError(f"no RecordIO magic word at byte {offset} of the record (found {magic:#010x})")
        flag, length = word >> _LENGTH_BITS, word & ((1 << _LENGTH_BITS) - 1)
        if flag > _LAST or (flag in (_WHOLE, _FIRST)) != expect_first:
            raise RecordError(f"unexpected part flag {flag} at byte {offset} of the record")
        end = offset + 8 + length
        if end > len(buf):
            head = _MAGIC_BYTES.join([*parts, bytes(buf[offset + 8 :])])
            if need is not None and len(head) >= need:
                return head, len(buf)
            raise RecordError(f"the record needs {end} bytes but only {len(buf)} are left in the file (truncated file?)")
        parts.append(bytes(buf[offset + 8 : end]))
        offset = end + (-length % 4)
        if flag in (_WHOLE, _LAST):
            return _MAGIC_BYTES.join(parts), offset
        expect_first = False


def pack_payload(image: bytes, label: float | tuple[float, ...], id: int = 0, id2: int = 0) -> bytes:
    """An image header and the encoded image; a tuple of labels is written as flag = len(labels) extra labels."""
    if isinstance(label, tuple | list):
        head = _HEADER.pack(len(label), 0.0, id, id2) + np.asarray(label, dtype="<f4").tobytes()
    else:
        head = _HEADER.pack(0, float(label), id, id2)
    return head + image


def unpack_payload(payload: bytes) -> tuple[ImageHeader, bytes]:
    """(image header, encoded image) of a record's payload."""
    if len(payload) < _HEADER.size:
        raise RecordError(f"the payload has {len(payload)} bytes, fewer than the {_HEADER.size}-byte image header")
    flag, label, id_, id2 = _HEADER.unpack_from(payload)
    start = _HEADER.size + 4 * flag
    if flag > 0:
        if len(payload) < start:
            raise RecordError(f"the image header announces {flag} labels but the payload ends before them")
        labels = tuple(np.frombuffer(payload, dtype="<f4", count=flag, offset=_HEADER.size).tolist())
    else:
        labels = (label,)
    return ImageHeader(flag, labels, id_, id2), payload[start:]


def read_idx(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(keys, offsets) of a `.idx` file, as int64 arrays in file order.

    Millions of lines (MS1MV2: 5.8 M) are parsed by numpy at once; a file that does not parse as one
    `key<TAB>offset` per line is read again line by line, to name the first bad line.

    Raises:
        FacetrainError: a line that is not `key<TAB>offset` (with the line number).
    """
    text = path.read_text()
    lines = text.count("\n") + (not text.endswith("\n"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # older numpy warns and stops at a bad token
            values = np.fromstring(text, dtype=np.int64, sep=" ")
    except ValueError:  # numpy 2 raises there
        values = np.empty(0, dtype=np.int64)
    if values.size == 2 * lines == 2 * text.count("\t") and values.size and values.min() >= 0:
        return values[0::2].copy(), values[1::2].copy()
    return _read_idx_lines(path, text)


def _read_idx_lines(path: Path, text: str) -> tuple[np.ndarray, np.ndarray]:
    keys, offsets = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            key, offset = (int(v) for v in line.split())
        except ValueError:
            raise FacetrainError(f"{path} line {n}: {line.strip()!r} is not `key<TAB>offset`; the .idx file is "
                                 "damaged — rebuild it or copy it again with its train.rec") from None
        if key < 0 or offset < 0:
            raise FacetrainError(f"{path} line {n}: negative key or offset {line.strip()!r}; the .idx file is "
                                 "damaged — rebuild it or copy it again with its train.rec")
        keys.append(key)
        offsets.append(offset)
    if not keys:
        raise FacetrainError(f"{path} lists no records; it should hold one `key<TAB>offset` line per record")
    return np.array(keys, dtype=np.int64), np.array(offsets, dtype=np.int64)


class RecordWriter:
    """Append records to a `.rec` file and their `key<TAB>offset` lines to its `.idx` (MXIndexedRecordIO's layout)."""

    def __init__(self, rec: Path, idx: Path):
        self._rec, self._idx = rec.open("wb"), idx.open("w")
        self._offset = 0

    def write(self, key: int, payload: bytes) -> None:
        data = frame_record(payload)
        self._rec.write(data)
        self._idx.write(f"{key}\t{self._offset}\n")
        self._offset += len(data)

    def close(self) -> None:
        self._rec.close()
        self._idx.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
