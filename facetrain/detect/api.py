"""`detect_faces`: photos in, one chosen face per photo out (box, score, five landmarks), batched by image size."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from facetrain.detect.mtcnn import MTCNN
from facetrain.errors import FacetrainError

__all__ = ["PICKS", "Detection", "detect_all", "detect_faces", "detector", "pick_face"]

PICKS = ("largest", "central")


@dataclass(frozen=True)
class Detection:
    """One face: `box` (x1, y1, x2, y2, pixel edges), `score` (O-Net's face probability), `landmarks`
    [5, 2] (x, y; pixel centres at integers; left eye, right eye, nose tip, left and right mouth corners
    as seen in the image: the order facetrain's landmarks files and the alignment template use), and
    `faces`, how many faces the photo holds."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    faces: int = 1


@functools.lru_cache(maxsize=4)
def detector(device: str = "cpu", min_face: float = 20.0) -> MTCNN:
    """The MTCNN with its published weights on `device` (loaded once per process and setting)."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise FacetrainError(f"detector device {device!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FacetrainError(f"detector device {device!r} asked for, but no GPU is visible; use device=cpu")
    if not min_face >= 12:
        raise FacetrainError(f"min_face={min_face} is below P-Net's 12-pixel window; use 12 or more (default 20)")
    return MTCNN(min_face=min_face).to(dev)


def _to_tensor(images: Sequence[Image.Image]) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.asarray(im.convert("RGB")) for im in images])).permute(0, 3, 1, 2)


def detect_all(images: Sequence[Image.Image], device: str = "cpu", min_face: float = 20.0,
               batch_size: int = 32) -> list[list[Detection]]:
    """Every face of every image (highest score first); images of equal size run as one batch.

    Args:
        images: PIL images of any mode (converted to RGB) and any sizes.
        device: where the networks run (cpu, cuda, cuda:N).
        min_face: the smallest face side searched for, in pixels.
        batch_size: images per forward pass.
    """
    net = detector(str(device), float(min_face))
    dev = next(net.parameters()).device
    by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
    for k, im in enumerate(images):
        by_size[im.size].append(k)
    found: list[list[Detection]] = [[] for _ in images]
    for members in by_size.values():
        for start in range(0, len(members), batch_size):
            ids = members[start : start + batch_size]
            boxes, scores, points, index = (t.cpu() for t in net(_to_tensor([images[k] for k in ids]).to(dev)))
            for b, s, p, i in zip(boxes.double(), scores.tolist(), points.double(), index.tolist(), strict=True):
                found[ids[i]].append(Detection(tuple(b.tolist()), s, p.numpy()))
    return found


def pick_face(faces: list[Detection], size: tuple[int, int], pick: str = "largest") -> Detection | None:
    """The face to keep from a photo of `size` (width, height): the largest box or the one nearest the centre."""
    if pick not in PICKS:
        raise FacetrainError(f"pick={pick!r} is not known; use one of {', '.join(PICKS)}")
    if not faces:
        return None
    if pick == "largest":
        key = [-(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces]
    else:
        key = [((f.box[0] + f.box[2]) / 2 - size[0] / 2) ** 2 + ((f.box[1] + f.box[3]) / 2 - size[1] / 2) ** 2
               for f in faces]
    best = faces[int(np.argmin(key))]
    return Detection(best.box, best.score, best.landmarks, len(faces))


def detect_faces(images: Sequence[Image.Image], pick: str = "largest", device: str = "cpu",
                 min_face: float = 20.0) -> list[Detection | None]:
    """One face per image (None where there is none): the largest or the most central when several.

    Args:
        images: PIL images, any mode and size.
        pick: `largest` (box area) or `central` (box centre nearest the image centre).
        device: where the networks run (cpu, cuda, cuda:N).
        min_face: the smallest face side searched for, in pixels.

    Returns:
        A Detection (box, score, landmarks [5, 2], faces = how many were found) or None, per image.
    """
    if pick not in PICKS:
        raise FacetrainError(f"pick={pick!r} is not known; use one of {', '.join(PICKS)}")
    return [pick_face(faces, im.size, pick) for faces, im in zip(detect_all(images, device, min_face), images,
                                                                   strict=True)]
