"""Copy rows out of a memory-mapped checkpoint without keeping the file's pages resident.

A resume maps last.pt (`torch.load(mmap=True)`) and each rank copies its rows out of it. Every page the copy
reads stays mapped in the process until the whole checkpoint dict is dropped, so the rank's resident set
holds its shard twice for a while (once copied, once as the file's page cache). `copy_rows` copies chunk by
chunk and tells the kernel, after each chunk, that this process no longer needs the chunk's pages
(Linux `madvise(MADV_DONTNEED)`): for a private, unmodified file mapping that only unmaps them (they stay
in the page cache, and are read again from the file if touched). Only pages of a private mapping of a
regular file are released, found in /proc/self/maps; anywhere else (another OS, anonymous memory, a GPU
tensor) it is a plain copy.
"""

from __future__ import annotations

import ctypes
import mmap
import sys
from pathlib import Path

import torch

__all__ = ["copy_rows"]

_MADV_DONTNEED = 4
_CHUNK_BYTES = 64 << 20


def _file_mappings() -> list[tuple[int, int]]:
    """[start, end) of this process's private mappings of regular files (not anonymous, heap, stack)."""
    spans = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[1][3] == "p" and fields[5].startswith("/"):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            spans.append((start, end))
    return spans


def _releaser(tensor: torch.Tensor):
    """A function dropping the pages under a slice of `tensor` (whole pages inside it), or None when its
    memory is not a private file mapping (then nothing may be released)."""
    if not sys.platform.startswith("linux") or tensor.device.type != "cpu" or not tensor.is_contiguous():
        return None
    first = tensor.data_ptr()
    last = first + tensor.numel() * tensor.element_size()
    try:
        inside = any(start <= first and last <= end for start, end in _file_mappings())
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    if not inside:
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

    def release(part: torch.Tensor) -> None:
        lo = -(-part.data_ptr() // mmap.PAGESIZE) * mmap.PAGESIZE
        hi = (part.data_ptr() + part.numel() * part.element_size()) // mmap.PAGESIZE * mmap.PAGESIZE
        if hi > lo:
            madvise(lo, hi - lo, _MADV_DONTNEED)

    return release


@torch.no_grad()
def copy_rows(dst: torch.Tensor, src: torch.Tensor, chunk_bytes: int = _CHUNK_BYTES) -> torch.Tensor:
    """dst.copy_(src) row block by row block; where `src` lies in a private file mapping (a checkpoint loaded
    with mmap=True), each block's pages are released once copied. Returns dst."""
    if src.dim() == 0:
        return dst.copy_(src)
    release = _releaser(src)
    row = max(1, src[0].numel() * src.element_size()) if src.dim() > 1 and len(src) else max(1, src.element_size())
    step = max(1, chunk_bytes // row)
    for lo in range(0, len(src), step):
        dst[lo:lo + step].copy_(src[lo:lo + step])
        if release is not None:
            release(src[lo:lo + step])
    return dst
