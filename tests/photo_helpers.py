"""Real test photos (tests/fixtures/photos, origins and licences in its README) and LFW-like 250x250 cuts of them."""

from __future__ import annotations

import json

import numpy as np
from helpers import REPO
from PIL import Image

PHOTOS = REPO / "tests" / "fixtures" / "photos"
FACES = ("astronaut.jpg", "grace_hopper.jpg")
NO_FACES = ("coffee.jpg", "gravel.jpg")


def photo(name: str) -> Image.Image:
    with Image.open(PHOTOS / name) as im:
        return im.convert("RGB")


def hand_landmarks(name: str) -> np.ndarray:
    """[5, 2] hand-marked points of a face photo."""
    return np.array(json.loads((PHOTOS / "landmarks.json").read_text())[name])


def transformed(image: Image.Image, scale: float, shift: tuple[float, float], size: tuple[int, int]
                ) -> Image.Image:
    """The (width, height) image showing `image` scaled about the origin, then shifted: q = scale p + shift
    (pixel centres at integers, as the landmarks)."""
    a = 1.0 / scale
    # PIL maps output to input in its own coordinates, where pixel centres sit at +0.5
    tx = 0.5 - a * (0.5 + shift[0])
    ty = 0.5 - a * (0.5 + shift[1])
    return image.transform(size, Image.Transform.AFFINE, (a, 0, tx, 0, a, ty), resample=Image.Resampling.BICUBIC,
                           fillcolor=(128, 128, 128))


def lfw_like(name: str, eye_distance: float = 46.0) -> tuple[Image.Image, np.ndarray]:
    """A 250x250 photo with the face centred at LFW's scale, and its hand-marked landmarks moved along."""
    marks = hand_landmarks(name)
    scale = eye_distance / np.linalg.norm(marks[1] - marks[0])
    shift = (125.0 - scale * marks[:, 0].mean(), 120.0 - scale * marks[:, 1].mean())
    return transformed(photo(name), scale, shift, (250, 250)), scale * marks + np.array(shift)
