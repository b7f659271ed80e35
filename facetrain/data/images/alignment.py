"""Five-point face alignment: the least-squares similarity transform (Umeyama 1991) onto the SphereFace template.

Coordinates are in pixels with pixel (i, j)'s centre at (x=j, y=i), the convention of OpenCV's
warpAffine and of the public landmark lists.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from facetrain.errors import FacetrainError

__all__ = ["TEMPLATE_112x96", "similarity_transform", "template_for", "warp_affine", "warp_face"]

# Left eye, right eye, nose tip, left and right mouth corners (as seen in the image) of a 112x96
# (height x width) crop: sphereface `preprocess/code/face_align_demo.m`, used by Face-ResNet too.
TEMPLATE_112x96 = np.array([[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366],
                            [33.5493, 92.3655], [62.7299, 92.2041]])


def template_for(size: Sequence[int]) -> np.ndarray:
    """The 5-point template for a (height, width) crop.

    The 112x96 template is scaled by s = height / 112 and centred horizontally:
    x' = s x + (width - 96 s) / 2, y' = s y. So 112x112 shifts x by 8 (insightface's
    arcface template) and 128x128 is 112x112's scaled by 8/7.
    """
    h, w = float(size[0]), float(size[1])
    s = h / 112.0
    return np.stack([s * TEMPLATE_112x96[:, 0] + (w - 96.0 * s) / 2.0, s * TEMPLATE_112x96[:, 1]], axis=1)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 matrix [sR | t] minimising sum ||dst_i - (s R src_i + t)||^2 (Umeyama 1991, eqs. 40-42).

    Args:
        src: [N, 2] points (the detected landmarks), N >= 2.
        dst: [N, 2] points (the template).

    Returns:
        [2, 3] float64: dst ≈ M[:, :2] @ src + M[:, 2]; R is a rotation (no reflection).
    """
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = (xs**2).sum() / len(src)
    if var_s <= 0:
        raise FacetrainError("the landmarks of an image all coincide; the landmarks file is wrong for it")
    cov = xd.T @ xs / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / var_s
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def warp_affine(image: Image.Image, matrix: np.ndarray, size: Sequence[int], fill: int | tuple = 0) -> Image.Image:
    """The (height, width) image whose pixel q shows `image` at p, where q = matrix[:, :2] @ p + matrix[:, 2] (bilinear).

    PIL's affine transform wants the output→input map in its own coordinates, where pixel
    centres sit at +0.5; the shifts below convert from the integer-centre convention.
    """
    h, w = int(size[0]), int(size[1])
    inv = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    # src_pil = inv @ (dst_pil - 0.5) + 0.5
    a, t = inv[:, :2], inv[:, 2]
    t_pil = t + 0.5 - a @ np.array([0.5, 0.5])
    coeffs = (a[0, 0], a[0, 1], t_pil[0], a[1, 0], a[1, 1], t_pil[1])
    return image.transform((w, h), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR, fillcolor=fill)


def warp_face(image: Image.Image, landmarks: np.ndarray, size: Sequence[int]) -> Image.Image:
    """The aligned (height, width) RGB crop whose landmarks land on `template_for(size)` (bilinear)."""
    m = similarity_transform(landmarks, template_for((int(size[0]), int(size[1]))))
    return warp_affine(image.convert("RGB"), m, size)
