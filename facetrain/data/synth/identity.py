"""Identity traits of a synthetic face: geometry, proportions and colours that stay fixed per person."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Identity", "sample_identity"]

_SKIN_LIGHT, _SKIN_DARK = np.array([238, 205, 180]), np.array([85, 58, 42])
_HAIR = np.array([[25, 20, 18], [70, 45, 30], [120, 80, 45], [200, 165, 100], [150, 60, 30], [140, 140, 140],
                  [225, 225, 220]])
_IRIS = np.array([[70, 45, 25], [40, 30, 20], [70, 110, 170], [80, 120, 80], [110, 110, 120]])


@dataclass(frozen=True)
class Identity:
    """All sizes are in canvas pixels of a 192x224 frontal face (twice the 96x112 output)."""

    face_rx: float
    face_ry: float
    chin: float  # 0 round .. 1 pointed
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    hair_style: int  # 0 short, 1 long, 2 receding, 3 fringe, 4 volume on top
    hairline: float
    eye_dx: float
    eye_y: float
    eye_rx: float
    eye_ry: float
    iris: tuple[int, int, int]
    brow_thick: float
    brow_slant: float
    brow_gap: float
    nose_len: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip_thick: float
    lip: tuple[int, int, int]
    ear: float
    beard: float  # 0 none .. 1 full
    moustache: bool
    glasses: int  # 0 none, 1 round, 2 square
    mole: tuple[float, float] | None


def _colour(rng: np.random.Generator, base: np.ndarray, jitter: float) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(base + rng.normal(0, jitter, 3), 0, 255))


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw one person's traits; continuous ranges make some people look alike, as in real data."""
    skin = _SKIN_LIGHT + (_SKIN_DARK - _SKIN_LIGHT) * rng.random()
    skin_c = _colour(rng, skin, 8)
    lip = np.array(skin_c) * 0.7 + np.array([150, 40, 50]) * 0.3
    bearded = rng.random() < 0.22
    return Identity(
        face_rx=rng.uniform(54, 70), face_ry=rng.uniform(72, 90), chin=rng.random(),
        skin=skin_c, hair=_colour(rng, _HAIR[rng.integers(len(_HAIR))], 12),
        hair_style=int(rng.integers(5)), hairline=rng.uniform(0.0, 1.0),
        eye_dx=rng.uniform(20, 29), eye_y=rng.uniform(-14, 0), eye_rx=rng.uniform(7, 11),
        eye_ry=rng.uniform(3.5, 6.0), iris=_colour(rng, _IRIS[rng.integers(len(_IRIS))], 10),
        brow_thick=rng.uniform(2, 6), brow_slant=rng.uniform(-0.3, 0.3), brow_gap=rng.uniform(8, 16),
        nose_len=rng.uniform(18, 32), nose_w=rng.uniform(7, 14),
        mouth_y=rng.uniform(32, 46), mouth_w=rng.uniform(14, 26), lip_thick=rng.uniform(2, 6),
        lip=_colour(rng, lip, 6), ear=rng.uniform(9, 16),
        beard=rng.uniform(0.4, 1.0) if bearded else 0.0, moustache=bool(rng.random() < 0.18),
        glasses=int(rng.choice([0, 1, 2], p=[0.84, 0.08, 0.08])),
        mole=(rng.uniform(-0.6, 0.6), rng.uniform(-0.2, 0.6)) if rng.random() < 0.3 else None,
    )
