"""A YouTube-Faces-style tree: `frame_images_DB/<Name>/<video>/<video>.<frame>.jpg` + `splits.txt` (real format).

Each video keeps one nuisance draw (pose, light, framing, background) and moves a little from frame to
frame, so frames of a video look alike and two videos of a person differ as much as two LFW photos.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from facetrain.data.synth.identity import sample_identity
from facetrain.data.synth.names import person_names
from facetrain.data.synth.nuisance import Nuisance, sample_nuisance
from facetrain.data.synth.pair_counts import cross_pairs
from facetrain.data.synth.render import render_face
from facetrain.errors import FacetrainError

__all__ = ["YTF_HEADER", "frame_nuisance", "write_ytf"]

_YTF = 3  # random stream of YTF people (never shared with the CASIA/LFW streams)
YTF_HEADER = "split number, pair number in split, first name, second name, is same"


def frame_nuisance(base: Nuisance, rng: np.random.Generator) -> Nuisance:
    """The video's nuisance, nudged for one frame (head motion, expression, hand-held camera)."""
    return dataclasses.replace(
        base, yaw=float(np.clip(base.yaw + rng.normal(0, 0.06), -0.8, 0.8)),
        pitch=float(np.clip(base.pitch + rng.normal(0, 0.04), -0.4, 0.4)), roll=base.roll + rng.normal(0, 2),
        smile=float(np.clip(base.smile + rng.normal(0, 0.15), -0.3, 1.0)),
        shift=(base.shift[0] + rng.normal(0, 1.5), base.shift[1] + rng.normal(0, 1.5)))


def _render_videos(args) -> int:
    """All videos of one person (a worker-process task)."""
    seed, person, videos, frames, folder, size, quality = args
    ident = sample_identity(np.random.default_rng([seed, _YTF, person]))
    for v in range(videos):
        vrng = np.random.default_rng([seed, _YTF, person, v + 1])
        base = sample_nuisance(vrng)
        out = folder / str(v)
        out.mkdir(parents=True, exist_ok=True)
        for f in range(frames):
            rng = np.random.default_rng([seed, _YTF, person, v + 1, f + 1])
            image = render_face(ident, frame_nuisance(base, rng), rng, size=(size[1], size[0]))
            image.save(out / f"{v}.{f + 1}.jpg", quality=quality)
    return videos * frames


def _split_pairs(names: list[str], videos: dict[str, int], n: int, rng: np.random.Generator) -> list[tuple]:
    same = [(a, i, a, j) for a in names for i in range(videos[a]) for j in range(i + 1, videos[a])]
    if len(same) < n:
        raise FacetrainError(f"a YTF split has only {len(same)} same-person video pairs; raise ytf_max_videos "
                             "or ytf_identities_per_split")
    chosen = [same[k] for k in sorted(rng.choice(len(same), n, replace=False))]
    possible = cross_pairs([videos[a] for a in names])
    if possible < n:  # the draw below would never end
        raise FacetrainError(f"a YTF split has only {possible} different-person video pairs; raise "
                             "ytf_identities_per_split")
    diff: set[tuple] = set()
    while len(diff) < n:
        a, b = sorted(rng.choice(len(names), 2, replace=False))
        diff.add((names[a], int(rng.integers(videos[names[a]])), names[b], int(rng.integers(videos[names[b]]))))
    return chosen + sorted(diff)


def write_ytf(out: Path, seed: int, splits: int, pairs_per_split: int, people_per_split: int, max_videos: int,
              frames: int, size: tuple[int, int], quality: int, render_all) -> dict:
    """Write the tree and splits.txt (a header line, `, ` separators, 250-style same then different blocks)."""
    rng = np.random.default_rng([seed, _YTF])
    names = person_names(splits * people_per_split, seed + 3_000)
    videos = {n: int(v) for n, v in zip(names, rng.integers(2, max_videos + 1, len(names)), strict=True)}
    render_all(_render_videos, [(seed, i, videos[n], frames, out / "frame_images_DB" / n, size, quality)
                                for i, n in enumerate(names)], sum(videos.values()) * frames, "synth ytf")
    lines = [YTF_HEADER]
    for s in range(splits):
        group = names[s::splits]  # people never cross splits
        for k, (a, i, b, j) in enumerate(_split_pairs(group, videos, pairs_per_split, rng)):
            lines.append(f"{s + 1}, {k + 1}, {a}/{i}, {b}/{j}, {int(a == b)}")
    (out / "splits.txt").write_text("\n".join(lines) + "\n")
    return {"ytf_videos": sum(videos.values()), "ytf_frames": sum(videos.values()) * frames,
            "ytf_pairs": 2 * splits * pairs_per_split}
