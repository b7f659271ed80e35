"""Read insightface's `.bin` validation sets (lfw.bin, cfp_fp.bin, agedb_30.bin, ...) with a restricted unpickler.

A `.bin` file is a pickle of `(bins, issame)`: 2P encoded images (JPEG/PNG bytes; images 2i and 2i+1 form
pair i) and P booleans, written by Python 2 (`str` images, read as bytes) or Python 3, `issame` a list or
a numpy bool array. A pickle can name any Python callable; this reader admits only the few globals such
a file needs, so a data file never runs code.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetrain.errors import FacetrainError

__all__ = ["BinPairs", "read_bin"]


def _latin1(text: str, encoding: str) -> bytes:
    """`_codecs.encode` as Python 3 pickles bytes under protocol 2, and nothing else."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode(..., {encoding!r}) is not how bytes are pickled")
    return text.encode("latin1")


def _empty_bytes(*args) -> bytes:
    """`bytes()` as Python 3 pickles b'' under protocol 2, and nothing else."""
    if args:
        raise pickle.UnpicklingError("bytes(...) with arguments is not how bytes are pickled")
    return b""


_RECONSTRUCT = np.array([True]).__reduce__()[0]  # numpy.core / numpy._core .multiarray._reconstruct
_SCALAR = np.bool_(True).__reduce__()[0]  # numpy.core / numpy._core .multiarray.scalar (a list of numpy bools)
_ALLOWED = {
    ("_codecs", "encode"): _latin1,  # Python 3 bytes under protocol 2
    **{(m, "bytes"): _empty_bytes for m in ("builtins", "__builtin__")},  # b'' under protocol 2
    **{(f"numpy.{core}.multiarray", name): fn for core in ("core", "_core")
       for name, fn in (("_reconstruct", _RECONSTRUCT), ("scalar", _SCALAR))},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
_PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                  UnicodeError, OverflowError, MemoryError, RecursionError)


@dataclass(frozen=True)
class BinPairs:
    """One validation set: encoded images in file order and a label per consecutive pair."""

    path: Path
    images: list[bytes]  # [2P] encoded images
    same: np.ndarray  # bool [P]

    def __len__(self) -> int:
        return len(self.same)

    @property
    def name(self) -> str:
        """The file's stem (lfw, cfp_fp, agedb_30, ...): the metrics' key."""
        return self.path.stem


class _DataOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")  # Python 2 `str` images come back as bytes, as insightface reads them
        self.path = path

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise FacetrainError(f"{self.path}: refuses to load {module}.{name} from this pickle; a .bin validation "
                                 "file holds only images and labels — is it the file you meant?") from None

    def persistent_load(self, pid):
        raise FacetrainError(f"{self.path}: refuses a persistent reference in this pickle; a .bin validation file "
                             "holds only images and labels — is it the file you meant?")


def _labels(path: Path, issame) -> np.ndarray:
    if isinstance(issame, np.ndarray):
        if issame.ndim != 1 or issame.dtype != bool:
            raise FacetrainError(f"{path}: issame is an array of {issame.dtype} with shape {issame.shape}; "
                                 "a .bin validation file has one boolean per pair")
        return issame.copy()
    if not isinstance(issame, list | tuple):
        raise FacetrainError(f"{path}: issame is a {type(issame).__name__}; a .bin validation file has a list of "
                             "booleans, one per pair")
    for i, value in enumerate(issame):
        if not isinstance(value, bool | np.bool_):
            raise FacetrainError(f"{path}: issame[{i}] is {value!r}, not a boolean; a .bin validation file has one "
                                 "boolean per pair")
    return np.array(issame, dtype=bool)


def _check(path: Path, data) -> BinPairs:
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise FacetrainError(f"{path}: holds a {type(data).__name__}, not the (images, issame) pair insightface "
                             "writes; is it a .bin validation file?")
    bins, issame = data
    if not isinstance(bins, list | tuple):
        raise FacetrainError(f"{path}: the images are a {type(bins).__name__}, not a list of encoded images")
    for i, image in enumerate(bins):
        if not isinstance(image, bytes | bytearray):
            raise FacetrainError(f"{path}: image {i} is a {type(image).__name__}, not encoded image bytes")
    same = _labels(path, issame)
    if len(bins) % 2:
        raise FacetrainError(f"{path}: {len(bins)} images is an odd number; images 2i and 2i+1 form pair i, so "
                             "the file is damaged or not a .bin validation set")
    if len(bins) // 2 != len(same):
        raise FacetrainError(f"{path}: {len(bins)} images make {len(bins) // 2} pairs but issame has {len(same)} "
                             "labels; the file is damaged or not a .bin validation set")
    return BinPairs(path, [bytes(b) for b in bins], same)


def read_bin(path: Path) -> BinPairs:
    """Load and check one `.bin` file without running anything it names.

    Raises:
        FacetrainError: (one line naming the file) it is missing, not a complete pickle, names a global
            other than the few a `.bin` needs, or does not hold 2P images and P booleans.
    """
    if not path.is_file():
        raise FacetrainError(f"{path} does not exist; pass insightface .bin validation files, e.g. "
                             "protocol.paths=[/data/lfw.bin,/data/cfp_fp.bin]")
    try:
        with path.open("rb") as f:
            data = _DataOnlyUnpickler(f, path).load()
    except _PICKLE_ERRORS as err:
        reason = str(err) or type(err).__name__
        raise FacetrainError(f"{path}: cannot be read as a pickle ({reason}); a .bin validation file is insightface's "
                             "pickle of (images, issame) — is it the file you meant, fully downloaded?") from None
    return _check(path, data)
