"""read_bin: insightface .bin files from Python 2 and 3 load; pickles that name code are refused, never run."""

import builtins
import io
import os
import pickle
import re
import subprocess

import numpy as np
import pytest
from bin_helpers import write_py2_bin, write_py3_bin
from PIL import Image

from facetrain.errors import FacetrainError
from facetrain.eval.protocols.bin import read_bin


def _jpeg(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


IMAGES = [_jpeg(v) for v in range(0, 240, 30)]  # 8 images, 4 pairs (JPEGs > 255 bytes: Python 2 BINSTRING)
SAME = [True, False, True, False]


@pytest.mark.parametrize("write", [
    lambda p: write_py3_bin(p, IMAGES, SAME),
    lambda p: write_py3_bin(p, IMAGES, np.array(SAME)),
    lambda p: write_py3_bin(p, IMAGES, np.array(SAME), protocol=2),  # bytes via _codecs.encode
    lambda p: write_py3_bin(p, IMAGES, [np.bool_(s) for s in SAME], protocol=5),
    lambda p: write_py2_bin(p, IMAGES, SAME),
    lambda p: write_py2_bin(p, IMAGES, SAME, array=True),
], ids=["py3-list", "py3-array", "py3-protocol2-array", "py3-numpy-bools", "py2-list", "py2-array"])
def test_python_2_and_3_files_load(tmp_path, write):
    got = read_bin(write(tmp_path / "cfp_fp.bin"))
    assert got.name == "cfp_fp" and len(got) == 4 and got.images == IMAGES
    assert got.same.dtype == bool and got.same.tolist() == SAME


class _Call:
    """A pickle that calls `fn(arg)` when loaded: what a hostile `.bin` would hold."""

    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return self.fn, (self.arg,)


@pytest.mark.parametrize("fn, named", [
    (os.system, f"{os.system.__module__}.system"),
    (subprocess.call, "subprocess.call"),
    (builtins.eval, "builtins.eval"),
])
def test_a_pickle_naming_code_is_refused_and_nothing_runs(tmp_path, fn, named):
    marker = tmp_path / "ran"
    command = f"open({str(marker)!r}, 'w')" if fn is builtins.eval else (
        ["touch", str(marker)] if fn is subprocess.call else f"touch {marker}")
    path = write_py3_bin(tmp_path / "lfw.bin", [_Call(fn, command), IMAGES[1]], [True])
    with pytest.raises(FacetrainError, match=rf"lfw.bin: refuses to load {named} from this pickle; a .bin validation "
                                             r"file holds only images and labels — is it the file you meant\?$"):
        read_bin(path)
    assert not marker.exists()
    if fn is os.system:  # the file really is hostile: a plain pickle.load runs the command
        pickle.loads(path.read_bytes())
        assert marker.exists()


def test_only_the_numpy_globals_a_bool_array_needs(tmp_path):
    path = write_py3_bin(tmp_path / "agedb_30.bin", IMAGES, np.array([1, 2, 3, 4.0]))
    with pytest.raises(FacetrainError, match=r"agedb_30.bin: issame is an array of float64 with shape \(4,\)"):
        read_bin(path)
    path.write_bytes(pickle.dumps((IMAGES, np.load)))
    with pytest.raises(FacetrainError, match=r"refuses to load numpy.load from this pickle"):
        read_bin(path)


def test_admitted_globals_only_as_pickle_uses_them(tmp_path):
    path = tmp_path / "cplfw.bin"
    path.write_bytes(pickle.dumps(([b"", b"x"], [True]), protocol=2))  # b'' is bytes() under protocol 2
    assert read_bin(path).images == [b"", b"x"]
    for content, reason in [
        (b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00zlib\x86R.", "_codecs.encode(..., 'zlib')"),
        (b"\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00\x7f\x85R.", "bytes(...) with arguments"),
    ]:
        path.write_bytes(content)
        with pytest.raises(FacetrainError, match=rf"cannot be read as a pickle \({re.escape(reason)} is not how bytes"):
            read_bin(path)
    path.write_bytes(b"Pfoo\n.")
    with pytest.raises(FacetrainError, match="refuses a persistent reference in this pickle"):
        read_bin(path)


@pytest.mark.parametrize("content, message", [
    (lambda: pickle.dumps((IMAGES[:7], SAME[:3])), r"7 images is an odd number; images 2i and 2i\+1 form pair i"),
    (lambda: pickle.dumps((IMAGES, SAME[:3])), "8 images make 4 pairs but issame has 3 labels"),
    (lambda: pickle.dumps((IMAGES, SAME))[:-300], r"cannot be read as a pickle \(.*\); a .bin validation file is"),
    (lambda: b"\xff\xd8\xff\xe0 a JPEG, not a pickle", r"cannot be read as a pickle \(.*\)"),
    (lambda: b"", r"cannot be read as a pickle \(Ran out of input\)"),
    (lambda: pickle.dumps({"images": IMAGES}), "holds a dict, not the \\(images, issame\\) pair insightface writes"),
    (lambda: pickle.dumps((["a"] * 8, SAME)), "image 0 is a str, not encoded image bytes"),
    (lambda: pickle.dumps((IMAGES, [1, 0, 1, 0])), r"issame\[0\] is 1, not a boolean"),
], ids=["odd", "mismatch", "truncated", "jpeg", "empty", "dict", "str-images", "int-labels"])
def test_malformed_files_are_one_line_each(tmp_path, content, message):
    path = tmp_path / "calfw.bin"
    path.write_bytes(content())
    with pytest.raises(FacetrainError, match=message) as err:
        read_bin(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_a_missing_file_says_how_to_pass_files(tmp_path):
    with pytest.raises(FacetrainError, match=r"does not exist; pass insightface .bin validation files, e\.g\. "
                                             r"protocol\.paths=\[/data/lfw\.bin,/data/cfp_fp\.bin\]"):
        read_bin(tmp_path / "lfw.bin")
