"""The crop around a face box (x, y, w, h) with a margin, at the aspect ratio of the network's input (IJB-A)."""

from __future__ import annotations

from collections.abc import Sequence

from facetrain.errors import FacetrainError

__all__ = ["crop_box"]


def crop_box(box: Sequence[float], margin: float, size: Sequence[int], name: str = "the image"
             ) -> tuple[int, int, int, int]:
    """The crop (left, top, right, bottom) around `box` = (x, y, w, h).

    The box grows by `margin` times its width/height on every side, then its shorter side grows about
    the centre until the crop has the aspect ratio of `size` (H, W), so the face is not stretched.

    Args:
        box: (x, y, w, h) in pixels, as IJB-A's FACE_X, FACE_Y, FACE_WIDTH, FACE_HEIGHT.
        margin: the fraction of the box's width/height added on every side.
        size: (height, width) whose aspect ratio the crop takes.
        name: the image, for the error message.

    Returns:
        the crop in pixels; it may reach outside the image.

    Raises:
        FacetrainError: the box has no area (width or height 0, or not a number).
    """
    if not (float(box[2]) > 0 and float(box[3]) > 0):
        raise FacetrainError(f"face box {tuple(box)} of {name} has no area; fix the protocol file "
                             "or pass allow_missing=true to drop it")
    x, y, w, h = (float(v) for v in box)
    w2, h2 = w * (1 + 2 * margin), h * (1 + 2 * margin)
    aspect = size[0] / size[1]  # H / W
    if h2 / w2 < aspect:
        h2 = w2 * aspect
    else:
        w2 = h2 / aspect
    cx, cy = x + w / 2, y + h / 2
    return (round(cx - w2 / 2), round(cy - h2 / 2), round(cx + w2 / 2), round(cy + h2 / 2))
