"""Photos/s of the bundled MTCNN detector on CPU, and of `facetrain data align` detecting on a folder of photos.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_detector.py            # 32-photo batch at 1 and 2 threads; align
    .venv/bin/python scripts/bench_detector.py --photos 64 --rounds 5

The photos are LFW-like 250x250 cuts of the two real test photos (tests/fixtures/photos: face centred,
eyes 46 px apart) at varied scales (eyes 40-52 px) and shifts, so no two are the same. `detect_all` runs
them as one batch of `--batch` same-size photos at each thread count (torch.set_num_threads); `data align`
(align_tree, no landmarks: it detects) turns `--photos` of them in 8 identity folders into 112x96 crops with
`--workers` one-thread worker processes, from scratch each round. Every measurement is timed `--rounds`
times in wall-clock seconds and the best round counts (other jobs only ever slow a round down), with the CPU
seconds the work took (this process and align's workers): photos per CPU-second is what one quiet core would
give. The load average (1 min) is printed before and after each, as it bounds what the numbers mean on a
shared machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from photo_helpers import FACES, hand_landmarks, photo, transformed  # noqa: E402

from facetrain.data.images.align_tree import align_tree  # noqa: E402
from facetrain.detect import detect_all  # noqa: E402


def lfw_like_photos(n: int, seed: int = 0) -> list:
    """n 250x250 photos: a real face centred at LFW's scale, jittered in scale and position."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        name = FACES[k % len(FACES)]
        marks = hand_landmarks(name)
        scale = rng.uniform(40, 52) / np.linalg.norm(marks[1] - marks[0])
        centre = np.array([125.0, 120.0]) + rng.uniform(-10, 10, 2)
        shift = (centre[0] - scale * marks[:, 0].mean(), centre[1] - scale * marks[:, 1].mean())
        out.append(transformed(photo(name), scale, shift, (250, 250)))
    return out


def load() -> float:
    return os.getloadavg()[0]


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (align's workers): what the work costs whatever the
    load, as long as the cores' caches are not what other jobs slow down."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def best_of(rounds: int, fn) -> tuple[float, float, list[float]]:
    """(best wall seconds, least CPU seconds, the loads seen before each round)."""
    times, cpu, loads = [], [], []
    for _ in range(rounds):
        loads.append(round(load(), 2))
        start, start_cpu = time.perf_counter(), cpu_seconds()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(cpu_seconds() - start_cpu)
    return min(times), min(cpu), loads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--photos", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"cpus {os.cpu_count()}, torch {torch.__version__}, load average at start {os.getloadavg()}")
    batch = lfw_like_photos(args.batch)
    found = detect_all(batch[:2])  # loads the weights; a face must be found
    assert all(found), "the detector found no face on an LFW-like photo"
    for threads in args.threads:
        torch.set_num_threads(threads)
        seconds, cpu, loads = best_of(args.rounds, lambda: detect_all(batch, batch_size=args.batch))
        print(f"detect_all, batch of {args.batch} 250x250 photos, {threads} thread(s): {args.batch / seconds:.1f} "
              f"photos/s (best of {args.rounds}: {seconds:.2f} s; {args.batch / cpu:.1f} photos per CPU-second; "
              f"load before each round {loads}, after {load():.2f})")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "photos"
        for k, im in enumerate(lfw_like_photos(args.photos, seed=1)):
            (src / f"person{k % 8}").mkdir(parents=True, exist_ok=True)
            im.save(src / f"person{k % 8}" / f"{k:03d}.jpg", quality=95)
        report = {}

        def align() -> None:
            shutil.rmtree(Path(tmp) / "out", ignore_errors=True)
            report.update(align_tree(src, None, Path(tmp) / "out", workers=args.workers, progress=False))

        seconds, cpu, loads = best_of(args.rounds, align)
        print(f"data align, {args.photos} 250x250 JPEGs -> 112x96 crops, workers={args.workers}: "
              f"{args.photos / seconds:.1f} photos/s (best of {args.rounds}: {seconds:.2f} s; "
              f"{args.photos / cpu:.1f} photos per CPU-second, workers included; aligned "
              f"{report['aligned_now']}, no face {report['no_face']}; load before each round {loads}, "
              f"after {load():.2f})")


if __name__ == "__main__":
    main()
