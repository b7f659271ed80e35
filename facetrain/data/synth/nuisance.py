"""Per-image nuisance of a synthetic face: pose, expression, light, framing, occlusion and quality."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Nuisance", "sample_nuisance"]


@dataclass(frozen=True)
class Nuisance:
    yaw: float  # radians; + turns the face to the image's right
    pitch: float
    roll: float  # degrees
    smile: float
    eye_open: float
    keep_glasses: bool
    gain: float  # overall brightness
    light_angle: float
    light_strength: float
    tint: tuple[float, float, float]
    background: tuple[int, int, int]
    shift: tuple[float, float]  # canvas pixels
    scale: float
    occlusion: int  # 0 none, 1 bar over the eyes, 2 lower face, 3 blob
    occlusion_colour: tuple[int, int, int]
    occlusion_pos: tuple[float, float]
    quality: float  # 0 pristine .. 1 worst (long-tailed: most images near 0)


def sample_nuisance(rng: np.random.Generator) -> Nuisance:
    return Nuisance(
        yaw=float(np.clip(rng.normal(0, 0.30), -0.8, 0.8)),
        pitch=float(np.clip(rng.normal(0, 0.15), -0.4, 0.4)),
        roll=float(np.clip(rng.normal(0, 7), -20, 20)),
        smile=rng.uniform(-0.3, 1.0),
        eye_open=0.1 if rng.random() < 0.05 else rng.uniform(0.6, 1.0),
        keep_glasses=bool(rng.random() < 0.8),
        gain=rng.uniform(0.55, 1.3), light_angle=rng.uniform(0, 2 * np.pi),
        light_strength=rng.uniform(0.0, 0.9),
        tint=tuple(float(t) for t in rng.uniform(0.85, 1.15, 3)),
        background=tuple(int(c) for c in rng.integers(0, 256, 3)),
        shift=(rng.normal(0, 5), rng.normal(0, 5)), scale=rng.uniform(0.88, 1.12),
        occlusion=int(rng.choice([0, 1, 2, 3], p=[0.8, 0.06, 0.07, 0.07])),
        occlusion_colour=tuple(int(c) for c in rng.integers(0, 256, 3)),
        occlusion_pos=(rng.uniform(-1, 1), rng.uniform(-1, 1)),
        quality=float(rng.random() ** 5),
    )
