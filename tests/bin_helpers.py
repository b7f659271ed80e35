"""Write insightface-style `.bin` validation files as Python 3 and as Python 2 would (helpers, no tests here)."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

from facetrain.eval.protocols.lfw import parse_lfw_pairs


def write_py3_bin(path: Path, images, same, protocol: int = 4) -> Path:
    """pickle.dump((images, same)) as insightface's Python 3 scripts write it (`same` a list or a bool array)."""
    path.write_bytes(pickle.dumps((list(images), same), protocol=protocol))
    return path


def _py2_str(data: bytes) -> bytes:
    """A Python 2 `str` under protocol 2: SHORT_BINSTRING or BINSTRING (unpickled as bytes with encoding='bytes')."""
    return b"U" + bytes([len(data)]) + data if len(data) < 256 else b"T" + struct.pack("<I", len(data)) + data


def _py2_bool_array(same) -> bytes:
    """numpy 1.x on Python 2: numpy.core.multiarray._reconstruct(ndarray, (0,), 'b'), then its state."""
    n, data = len(same), np.asarray(same, dtype=bool).tobytes()
    dtype = (b"cnumpy\ndtype\n" + _py2_str(b"b1") + b"K\x00K\x01\x87R(K\x03" + _py2_str(b"|")
             + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _py2_str(b"b") + b"\x87R"
            + b"(K\x01J" + struct.pack("<i", n) + b"\x85" + dtype + b"\x89" + _py2_str(data) + b"tb")


def write_py2_bin(path: Path, images, same, array: bool = False) -> Path:
    """The opcodes Python 2's cPickle (protocol 2) writes for (list of str, list of bool or a numpy bool array)."""
    out = b"\x80\x02(](" + b"".join(_py2_str(bytes(i)) for i in images) + b"e"
    out += _py2_bool_array(same) if array else b"](" + b"".join(b"\x88" if s else b"\x89" for s in same) + b"e"
    path.write_bytes(out + b"t.")
    return path


def lfw_as_bin(lfw_root: Path, path: Path) -> Path:
    """The LFW tree's pairs.txt as a .bin: each pair's two files' bytes, in pairs.txt order (so the folds coincide)."""
    pairs = parse_lfw_pairs(lfw_root / "pairs.txt")
    images = [(lfw_root / p).read_bytes() for pair in zip(pairs.left, pairs.right, strict=True) for p in pair]
    return write_py3_bin(path, images, [bool(s) for s in pairs.same])
