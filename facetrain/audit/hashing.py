"""Image fingerprints: a digest of the decoded pixels (exact duplicates), a tiny colour thumbnail (near ones).

Near duplicates (a thumbnail, a recompressed copy, a crop of a few percent resized back) keep an image's
coarse colour layout; another photo, even of the same person, moves it. An 8x8 colour thumbnail, centred and
L2-normalized (a 192-d vector), turns this into a cosine distance that faiss searches for candidates. It cannot
decide alone (docs/data.md): on one tree every injected copy stayed within 0.033 of its source; on another,
three 5% crops moved 0.047-0.130 while two distinct photos came as close as 0.031 (coarser or centre-only
thumbnails did not separate them either), so the candidates are verified by alignment (`registration`). A grey
DCT hash (pHash) could not separate copies from distinct photos on the first tree (look-alike renders share
their low frequencies), which is why colour is kept.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

__all__ = ["THUMB_DIM", "exact_digest", "is_gray", "thumbnail"]

_SIDE = 8
THUMB_DIM = 3 * _SIDE * _SIDE


def exact_digest(image: torch.Tensor) -> bytes:
    """16 bytes that are equal exactly when the decoded pixels (and the image's shape) are."""
    array = np.ascontiguousarray(image.numpy())
    return hashlib.blake2b(np.array(array.shape, np.int64).tobytes() + array.tobytes(), digest_size=16).digest()


def is_gray(image: torch.Tensor) -> bool:
    """Whether all three channels agree (a grey photo, whatever its file's colour space)."""
    return image.shape[0] == 1 or bool((image[0] == image[1]).all() and (image[1] == image[2]).all())


def thumbnail(image: torch.Tensor) -> np.ndarray:
    """float32 [192]: the image shrunk to 8x8 RGB (area averaging), minus its mean, unit length."""
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    small = TF.resize(rgb.float(), [_SIDE, _SIDE], antialias=True).ravel()
    small = small - small.mean()
    return (small / small.norm().clamp_min(1e-6)).numpy().astype(np.float32)
