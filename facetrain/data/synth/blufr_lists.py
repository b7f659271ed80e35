"""BLUFR list files (Liao et al. 2014 `list/lfw/` format) for the synthetic LFW tree: 10 random trials.

As in BLUFR v1.0: per trial about 26% of the people (1,500 of 5,749) form the training set and the rest the
test set; the gallery takes one image each of about 80% (1,000 of 1,256) of the test people with two or more
images; probes are the other test images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_blufr_lists"]

_BLUFR = 4  # random stream of the BLUFR trials
_TRAIN_FRACTION, _GALLERY_FRACTION = 1500 / 5749, 1000 / 1256


def _block(indices: list[int], names: list[str]) -> list[str]:
    return [str(len(indices))] + [f"{i + 1}, {names[i]}" for i in indices]


def write_blufr_lists(out: Path, counts: dict[str, int], seed: int, trials: int = 10) -> dict:
    """Write image_list.txt, labels.txt and {train,test,gallery,probe}_set.txt for LFW-layout `counts`."""
    people = sorted(counts)
    names = [f"{p}_{k:04d}.jpg" for p in people for k in range(1, counts[p] + 1)]
    labels = np.array([c for c, p in enumerate(people, start=1) for _ in range(counts[p])])
    rng = np.random.default_rng([seed, _BLUFR])
    sets: dict[str, list[str]] = {s: [str(trials)] for s in ("train", "test", "gallery", "probe")}
    for _ in range(trials):
        train_people = set(rng.choice(len(people), round(_TRAIN_FRACTION * len(people)), replace=False).tolist())
        train = [i for i in range(len(names)) if labels[i] - 1 in train_people]
        test = [i for i in range(len(names)) if labels[i] - 1 not in train_people]
        multi = sorted({labels[i] for i in test if counts[people[labels[i] - 1]] >= 2})
        chosen = rng.choice(multi, round(_GALLERY_FRACTION * len(multi)), replace=False)
        gallery = sorted(int(rng.choice([i for i in test if labels[i] == c])) for c in chosen)
        probe = sorted(set(test) - set(gallery))
        for key, idx in (("train", train), ("test", test), ("gallery", gallery), ("probe", probe)):
            sets[key] += _block(idx, names)
    out.mkdir(parents=True, exist_ok=True)
    (out / "image_list.txt").write_text("\n".join(names) + "\n")
    (out / "labels.txt").write_text("\n".join(str(x) for x in labels) + "\n")
    for key, lines in sets.items():
        (out / f"{key}_set.txt").write_text("\n".join(lines) + "\n")
    return {"blufr_images": len(names), "blufr_trials": trials}
