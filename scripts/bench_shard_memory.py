"""The sharded classifier's host memory per rank: initialisation, a step, a save and a resume (CPU, gloo).

    python scripts/bench_shard_memory.py                        # 2 ranks, C = 2,000,000, D = 256, ArcFace
    python scripts/bench_shard_memory.py --classes 4000000 --dim 512 --world-size 2
    python scripts/bench_shard_memory.py fused_class_update=true   # the class weights stepped chunk by chunk

N gloo processes (forked) build facetrain's TrainState with `shard_classifier=true` (a LeNet++ backbone: the
classifier is the point), take two training steps (the first creates the momentum; the second is a
step as every later one: weights, momentum and the gradient at once), save checkpoints/last.pt, drop the state and resume a
fresh one from that file. Each prints, per phase, one JSON line: its peak resident set during the phase
(/proc/self/status VmHWM, reset at each phase's start by writing 5 to /proc/self/clear_refs; where the
kernel refuses that, the peak since the process started, and `peak_reset` says false), the baseline (VmRSS
before any model exists), the bytes of its shard and of the full class-weight state (weights + momentum,
fp32), and whether the peak above the baseline is within the target: 1.5 x its shard on every rank, plus
the full state on rank 0 during a save (rank 0 alone assembles and writes the checkpoint). Also printed:
the peak above the phase's start (what the phase itself added) and a sampled peak of RssAnon (the memory
the process allocated, without the checkpoint pages a resume maps: page cache the ranks share).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import socket
import sys
import tempfile
import threading
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hydra import compose, initialize_config_module

from facetrain.train import build_state, train_step
from facetrain.train.resume import resume

PHASES = ("init", "step", "save", "resume")


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=2_000_000, help="C, the identities")
    parser.add_argument("--dim", type=int, default=256, help="D, the embedding size")
    parser.add_argument("--world-size", type=int, default=2, help="gloo processes")
    parser.add_argument("--loss", default="arcface", help="a loss with class weights (arcface, softmax, ...)")
    parser.add_argument("--dir", default=None, help="where the run directory goes (default: a temporary one)")
    parser.add_argument("overrides", nargs="*", help="more `facetrain train` overrides")
    return parser.parse_args(argv)


def _status(key: str) -> int:
    """A /proc/self/status value in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def _reset_peak() -> bool:
    """VmHWM back to the current VmRSS (Linux: clear_refs 5); False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status("VmHWM") <= _status("VmRSS") + (1 << 20)


class _AnonPeak:
    """The largest RssAnon (the process's own memory: no mapped file pages) seen while active, sampled
    every 10 ms on a thread; VmHWM also counts the checkpoint's pages a resume maps (page cache)."""

    def __enter__(self):
        self.peak, self._stop = _status("RssAnon"), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _status("RssAnon"))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _status("RssAnon"))


def _release() -> None:
    """Give freed heap back to the system, so the next phase starts from what is alive."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def _state_bytes(state) -> tuple[int, int]:
    """(this rank's, all ranks') bytes of the sharded class weights and their momentum (one buffer each)."""
    own = full = 0
    for param in state.parameters:
        shard = getattr(param, "class_shard", None)
        if shard is not None:
            row = param[0].numel() * param.element_size() if param.dim() > 1 else param.element_size()
            own += 2 * param.shape[0] * row
            full += 2 * shard.num_classes * row
    return own, full


def _worker(rank: int, world: int, port: int, cfg, classes: int, run_dir: str, out_dir: str) -> None:
    torch.set_num_threads(1)  # a forked child must not enter its parent's OpenMP pool
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    lines = []
    try:
        device = torch.device("cpu")
        _release()
        baseline, baseline_anon = _status("VmRSS"), _status("RssAnon")
        state, own, full = None, 0, 0

        def measure(phase: str, action) -> None:
            nonlocal state, own, full
            dist.barrier()
            start, reset = _status("VmRSS"), _reset_peak()
            with _AnonPeak() as anon:
                state = action(state) or state
                dist.barrier()
            peak = _status("VmHWM")
            own, full = _state_bytes(state)
            limit = 1.5 * own + (full if rank == 0 and phase == "save" else 0)
            above = peak - baseline
            lines.append({"phase": phase, "rank": rank, "world_size": world, "classes": classes,
                          "dim": int(cfg.embedding_dim), "loss": cfg.loss._target_.rsplit(".", 1)[-1],
                          "fused_class_update": bool(cfg.get("fused_class_update", False)),
                          "shard_bytes": own, "full_bytes": full, "baseline_rss": baseline, "start_rss": start,
                          "peak_rss": peak, "peak_above_baseline": above, "peak_above_start": peak - start,
                          "shard_ratio": round(above / own, 3), "limit_bytes": int(limit), "within": above <= limit,
                          "peak_anon_above_baseline": anon.peak - baseline_anon, "peak_reset": reset})

        h, w = cfg.input_size
        per_rank = int(cfg.batch_size) // world
        gen = torch.Generator().manual_seed(rank)
        images = torch.randint(0, 256, (per_rank, 3, h, w), dtype=torch.uint8, generator=gen)
        labels = torch.randint(0, classes, (per_rank,), generator=gen)
        measure("init", lambda _: build_state(cfg, classes, device, Path(run_dir)))
        def step(s):
            for _ in range(2):  # the first step creates the momentum, the second holds it during the backward
                train_step(s, images, labels)

        measure("step", step)
        measure("save", lambda s: s.save(s.checkpoint))
        state = None
        _release()

        def resumed(_):
            fresh = build_state(cfg, classes, device, Path(run_dir))
            resume(fresh, True)
            return fresh

        measure("resume", resumed)
        (Path(out_dir) / f"rank{rank}.json").write_text("\n".join(json.dumps(line) for line in lines))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench(args: argparse.Namespace) -> list[dict]:
    """Run the phases on `args.world_size` ranks; returns (and prints) one dict per rank and phase."""
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        run_dir, out_dir = Path(tmp) / "run", Path(tmp) / "out"
        out_dir.mkdir()
        overrides = ["backbone=lenet_pp", "backbone.in_channels=3", "backbone.channels=[4,8,8]",
                     "input_size=[28,28]", f"embedding_dim={args.dim}", f"loss={args.loss}",
                     "shard_classifier=true", f"batch_size={2 * args.world_size}", "device=cpu", "precision=fp32",
                     "warmup.iterations=0", f"run_dir={run_dir}", *args.overrides]
        with initialize_config_module(config_module="facetrain.configs", version_base="1.3"):
            cfg = compose("train", overrides)
        mp.start_processes(_worker, args=(args.world_size, _free_port(), cfg, args.classes, str(run_dir),
                                          str(out_dir)),
                           nprocs=args.world_size, join=True, start_method="fork")
        lines = [json.loads(line) for r in range(args.world_size)
                 for line in (out_dir / f"rank{r}.json").read_text().splitlines()]
    lines.sort(key=lambda line: (PHASES.index(line["phase"]), line["rank"]))
    for line in lines:
        print(json.dumps(line), flush=True)
    return lines


def main(argv: list[str] | None = None) -> list[dict]:
    return bench(_arguments(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
