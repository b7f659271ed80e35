"""Images/s of facetrain's loaders against libjpeg-turbo on one core, and against torchvision's ImageFolder.

    .venv/bin/python scripts/bench_loader.py                       # one core: bare decode vs rec / pack / folder items
    .venv/bin/python scripts/bench_loader.py --mode dataloader     # 20,000 JPEGs at 250x250 and 112x96, 2 workers
    .venv/bin/python scripts/bench_loader.py --mode dataloader --images 2000 --batches 5   # a quick look

`--mode one-core` (the default; `make bench`) writes `--images` JPEGs at `--sizes` (one size), converts them
to a RecordIO pack (data=rec) and a jpeg pack (data=packed), and times on one thread, in this process:
torchvision.io.decode_jpeg on the bytes already in memory (the bare libjpeg-turbo rate, the limit of any
loader), then `dataset[i]` of RecFaces, PackedFaces (jpeg) and FaceFolder over a shuffled order of the same
images, with input_size equal to the JPEGs' size (no resize). Each is timed `--rounds` times, interleaved,
in CPU seconds of this process, and the best round counts (a shared machine only ever slows a round down:
cache misses, frequency); the machine's load average is printed with the table.

`--mode dataloader` writes a synthetic CASIA-style tree per source size (identity folders of JPEGs; kept
between runs), packs it (raw and jpeg) and converts it to an insightface RecordIO pack (`rec`), then reads
random batches through a DataLoader with the same batch size,
worker count and transforms (decode -> uint8 tensor -> resize to the input size). Files are in the
page cache (just written or read by the warm-up), so the numbers measure CPU, not the disk. Memory
is the proportional set size (PSS) of the main process plus its workers at the end of each run, so
pages shared between them (a pack's memory map) are counted once.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, default_collate
from torchvision import datasets
from torchvision.transforms import v2

from facetrain.data import FaceFolder, PackedFaces, RecFaces
from facetrain.data.formats.pack import pack_tree
from facetrain.data.formats.rec_convert import folder_to_rec


def _write_person(args) -> int:
    folder, person, count, size, seed = args
    rng = np.random.default_rng([seed, person])
    base = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    h, w = size
    for k in range(count):
        noisy = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
        image = Image.fromarray(noisy).resize((w, h), Image.Resampling.BICUBIC)
        detail = rng.integers(-12, 13, (h, w, 3))  # texture, so JPEG sizes resemble photos
        image = Image.fromarray(np.clip(np.asarray(image, dtype=np.int16) + detail, 0, 255).astype(np.uint8))
        image.save(folder / f"{k + 1:03d}.jpg", quality=90)
    return count


def make_tree(root: Path, images: int, identities: int, size: tuple[int, int], workers: int) -> Path:
    """A CASIA-style tree (0000001/001.jpg, ...) of `images` JPEGs; reused when already complete."""
    marker = root / ".complete.json"
    spec = {"images": images, "identities": identities, "size": list(size)}
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return root
    counts = np.full(identities, images // identities)
    counts[: images % identities] += 1
    tasks = [(root / f"{i + 1:07d}", i, int(c), size, 0) for i, c in enumerate(counts)]
    if workers <= 1:
        total = sum(map(_write_person, tasks))
    else:
        with ProcessPoolExecutor(workers) as pool:
            total = sum(pool.map(_write_person, tasks, chunksize=8))
    marker.write_text(json.dumps(spec))
    print(f"wrote {total} JPEGs of {identities} identities at {size[0]}x{size[1]} to {root}")
    return root


def _pss_mib(pid: int) -> float:
    """PSS of a process and its children (the DataLoader workers), MiB."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total / 1024


def measure(dataset, batch: int, batches: int, workers: int, seed: int = 0) -> dict:
    """Images/s over `batches` random batches, after one warm-up batch (worker start-up excluded)."""
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, generator=g, num_workers=workers,
                        drop_last=True, persistent_workers=False, prefetch_factor=4 if workers else None)
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        images, _ = next(it)
        n += images.shape[0]
    seconds = time.perf_counter() - t0
    memory = _pss_mib(os.getpid())
    del it
    return {"images_per_s": n / seconds, "seconds": seconds, "pss_mib": memory}


def _dir_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def _time_round(fn, n: int, rounds: list[float]) -> None:
    """Images per CPU second of this process (user + system: file reads count), so other processes on a
    shared machine slow the wall clock but not the number; on an idle machine it is the wall-clock rate."""
    t0 = time.process_time()
    fn()
    rounds.append(n / (time.process_time() - t0))


def one_core(args) -> list[dict]:
    """Bare libjpeg-turbo decodes/s and item/s of rec, jpeg pack and folder on the same JPEGs, one thread."""
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        from facetrain.data.images.jpeg_decoder import JPEG_BACKEND
    except ImportError:  # a facetrain from before the fast path (for before/after numbers)
        JPEG_BACKEND = "pillow"

    warnings.filterwarnings("ignore", message="The image decoding", category=DeprecationWarning)
    torch.set_num_threads(1)
    spec = args.sizes.split(",")[0]
    size = tuple(int(v) for v in spec.split("x"))
    tree = make_tree(args.out / f"tree-{spec}-{args.images}", args.images, args.identities, size, 1)
    pack_dir, rec_dir = args.out / f"pack-{spec}-{args.images}-jpeg", args.out / f"rec-{spec}-{args.images}"
    if not (pack_dir / "pack.json").exists():
        pack_tree(tree, pack_dir, "jpeg", size, workers=1, progress=False)
    if not (rec_dir / "train.idx").exists():
        folder_to_rec(tree, rec_dir, progress=False)
    datasets_ = {"rec": RecFaces(rec_dir, size, progress=False), "pack_jpeg": PackedFaces(pack_dir, size),
                 "folder": FaceFolder(tree, size, progress=False)}
    files = sorted(tree.rglob("*.jpg"))
    encoded = [torch.frombuffer(bytearray(f.read_bytes()), dtype=torch.uint8) for f in files]
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(0)).tolist()
    runs = {"bare": lambda: [decode_jpeg(t, mode=ImageReadMode.RGB) for t in encoded]}
    for name, ds in datasets_.items():
        runs[name] = lambda ds=ds: [ds[i] for i in order]
    batches = [order[k : k + args.batch] for k in range(0, len(order), args.batch)]
    rec = datasets_["rec"]
    # the whole worker side of data=rec: items and the collate into a batch, [N, 3, H, W] as the default
    # DataLoader collate stacks it (channels_last=false), and NHWC for channels_last=true where available
    runs["rec+batch"] = lambda: [default_collate([rec[i] for i in b]) for b in batches]
    try:
        from facetrain.data.images.collate import image_collate

        nhwc = image_collate(True)
        runs["rec+batch_cl"] = lambda: [nhwc([rec[i] for i in b]) for b in batches]
    except ImportError:  # a facetrain from before it
        pass
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        fn()  # warm-up: page cache, lazily opened handles, first-call costs
    for _ in range(args.rounds):
        for name, fn in runs.items():
            _time_round(fn, len(files), rates[name])
    bare = max(rates["bare"])
    rows = [{"item": name, "images_per_s": max(r), "x_bare": max(r) / bare, "rounds": [round(x) for x in r]}
            for name, r in rates.items()]
    kib = sum(len(t) for t in encoded) / len(encoded) / 1024
    print(f"one core (torch threads {torch.get_num_threads()}, no workers): {len(files)} JPEGs at {spec}, "
          f"{kib:.1f} KiB each; facetrain decodes with {JPEG_BACKEND}; best of {args.rounds} rounds; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'item':<12} {'img/s':>8} {'x bare':>7}")
    for r in rows:
        print(f"{r['item']:<12} {r['images_per_s']:8.0f} {r['x_bare']:7.2f}")
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("one-core", "dataloader"), default="one-core")
    parser.add_argument("--out", type=Path, default=Path("/tmp/facetrain-bench-loader"))
    parser.add_argument("--images", type=int, default=None, help="JPEGs (default 2,000 one-core, 20,000 dataloader)")
    parser.add_argument("--identities", type=int, default=None, help="identity folders (default images / 40)")
    parser.add_argument("--rounds", type=int, default=5, help="one-core: timed passes of each item path")
    parser.add_argument("--sizes", default=None, help="source JPEG sizes, HxW, comma-separated "
                        "(default 112x112 one-core, 250x250,112x96 dataloader)")
    parser.add_argument("--input-size", default="112x96", help="HxW the loaders deliver")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=30, help="timed batches per loader")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (the same for every loader)")
    parser.add_argument("--loaders", default="imagefolder,folder,pack_raw,pack_jpeg,rec")
    args = parser.parse_args(argv)
    one = args.mode == "one-core"
    args.images = args.images or (2_000 if one else 20_000)
    args.identities = args.identities or max(1, args.images // 40)
    args.sizes = args.sizes or ("112x112" if one else "250x250,112x96")
    return one_core(args) if one else dataloader(args)


def dataloader(args) -> list[dict]:
    """Images/s of ImageFolder and facetrain's loaders through a DataLoader with `--workers` workers."""
    torch.set_num_threads(1)  # each worker decodes one image at a time, as in training
    h, w = (int(v) for v in args.input_size.split("x"))
    rows = []
    for spec in args.sizes.split(","):
        size = tuple(int(v) for v in spec.split("x"))
        tree = make_tree(args.out / f"tree-{spec}", args.images, args.identities, size, max(1, args.workers))
        packs = {}
        for fmt in ("raw", "jpeg"):
            pack_dir = args.out / f"pack-{spec}-{fmt}-{h}x{w}"
            t0 = time.perf_counter()
            if not (pack_dir / "pack.json").exists():
                pack_tree(tree, pack_dir, fmt, (h, w), workers=max(1, args.workers), progress=False)
            packs[fmt] = (pack_dir, time.perf_counter() - t0)
        rec_dir, t0 = args.out / f"rec-{spec}", time.perf_counter()
        if not (rec_dir / "train.idx").exists():
            folder_to_rec(tree, rec_dir, progress=False)
        packs["rec"] = (rec_dir, time.perf_counter() - t0)
        make = {
            "imagefolder": lambda t=tree: datasets.ImageFolder(
                str(t), transform=v2.Compose([v2.PILToTensor(), v2.Resize((h, w), antialias=True)])),
            "folder": lambda t=tree: FaceFolder(t, (h, w), cache_dir=args.out / "cache", progress=False),
            "pack_raw": lambda p=packs: PackedFaces(p["raw"][0], (h, w)),
            "pack_jpeg": lambda p=packs: PackedFaces(p["jpeg"][0], (h, w)),
            "rec": lambda p=packs: RecFaces(p["rec"][0], (h, w), progress=False),
        }
        for name in args.loaders.split(","):
            result = measure(make[name](), args.batch, args.batches, args.workers)
            pack = packs.get(name.removeprefix("pack_")) if name.startswith(("pack_", "rec")) else None
            disk = _dir_mib(pack[0]) if pack else _dir_mib(tree)
            rows.append({"source": spec, "loader": name, **result, "disk_mib": disk,
                         "pack_s": pack[1] if pack else 0.0})
            print(json.dumps(rows[-1]))
    print(f"\nbatch {args.batch}, {args.workers} workers, input {h}x{w}, {args.batches} timed batches "
          f"(cpu count {os.cpu_count()})")
    print(f"{'source':>8}  {'loader':<12} {'img/s':>8} {'x ImageFolder':>14} {'PSS MiB':>8} {'disk MiB':>9}")
    for r in rows:
        ref = next((x["images_per_s"] for x in rows if x["source"] == r["source"] and x["loader"] == "imagefolder"),
                   float("nan"))
        print(f"{r['source']:>8}  {r['loader']:<12} {r['images_per_s']:8.0f} {r['images_per_s'] / ref:14.1f} "
              f"{r['pss_mib']:8.0f} {r['disk_mib']:9.0f}")
    return rows


if __name__ == "__main__":
    main()
