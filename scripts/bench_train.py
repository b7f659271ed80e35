"""Training throughput, peak memory and MFU of facetrain's own `train_step` on random uint8 batches.

Usage: python scripts/bench_train.py [--backbone small_cnn] [--loss softmax] [--batch 64] [--classes 400]
           [--precision auto|bf16|fp16|fp32] [--channels-last] [--compile] [--world-size 1] [--steps 20]
           [--device auto] [KEY=VALUE ...]   (any further `facetrain train` override, e.g. embedding_dim=512)

It times exactly the step training runs (forward, loss, backward, scaler, clipping, optimizer, LR schedule),
without the data loader. `--batch` is the global batch; `--world-size N` starts N ranks through torchrun's
launcher (NCCL on GPUs, gloo on CPU), each taking batch / N. Printed: global images/s, rank 0's peak memory
(CUDA max_memory_allocated, or the process's peak RSS on CPU), FLOPs per image (torch's FlopCounterMode over
one training step: forward + backward), and MFU = the FLOP rate achieved / the device's peak, measured here
by a large matmul in the precision's dtype. Speed targets are checked here, never by timed tests.
`bench(arguments(argv))` also returns those numbers as a dict (scripts/gpu_check.py calls it in-process).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

import torch
from hydra import compose, initialize_config_module
from torch.utils.flop_counter import FlopCounterMode

from facetrain.distributed.process_group import barrier, distributed_run
from facetrain.distributed.rank import is_main_process, world_size
from facetrain.run.device import pick_device
from facetrain.train import build_state, train_step
from facetrain.train.precision import autocast_dtype
from facetrain.train.speed import compile_backbone


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="small_cnn")
    parser.add_argument("--loss", default="softmax")
    parser.add_argument("--batch", "--batch-size", dest="batch", type=int, default=64, help="global batch")
    parser.add_argument("--classes", type=int, default=400)
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the backbone")
    parser.add_argument("--world-size", type=int, default=1, help="processes (one per GPU) through torchrun")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation, autotuning)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("overrides", nargs="*", help="more `facetrain train` overrides, KEY=VALUE")
    return parser.parse_args(argv)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, reps: int = 5) -> float:
    """The device's FLOP/s on an n x n matmul in `dtype` (best of `reps`): MFU's denominator, measured."""
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    a @ b  # warm-up: kernel selection, allocations
    inner = 10 if device.type == "cuda" else 1  # several launches per timing on a GPU, where one is ~1 ms
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(inner):
            a @ b
        _sync(device)
        best = min(best, (time.perf_counter() - t0) / inner)
    return 2 * n**3 / best


def step_flops(state, images: torch.Tensor, labels: torch.Tensor) -> int:
    """FLOPs of one training step on this rank's batch (matmuls and convolutions, forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        train_step(state, images, labels)
    return counter.get_total_flops()


def _peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def bench(args: argparse.Namespace) -> dict:
    """Time the step as `args` says; print the line (rank 0) and return its numbers (every rank)."""
    overrides = [f"backbone={args.backbone}", f"loss={args.loss}", "run_dir=.", f"batch_size={args.batch}",
                 f"precision={args.precision}", f"channels_last={args.channels_last}", "compile=false",
                 f"device={args.device}", *args.overrides]
    with initialize_config_module(config_module="facetrain.configs", version_base="1.3"):
        cfg = compose("train", overrides)
    device = pick_device(cfg.device)
    state = build_state(cfg, args.classes, device, tempfile.mkdtemp())
    h, w = state.model.input_size
    per_rank = args.batch // world_size()
    images = torch.randint(0, 256, (per_rank, getattr(state.model.backbone, "in_channels", 3), h, w),
                           dtype=torch.uint8, device=device)
    labels = torch.randint(0, args.classes, (per_rank,), device=device)
    state.network.train()
    flops = step_flops(state, images, labels)  # before compiling: the counter sees eager ops only
    if args.compile:
        compile_backbone(state.model.backbone)
    dtype = autocast_dtype(state.precision) or torch.float32
    peak = matmul_peak(device, dtype, 8192 if device.type == "cuda" else 1024)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t_warm = time.perf_counter()
    for _ in range(args.warmup):
        train_step(state, images, labels)
    _sync(device)
    warmup_seconds = time.perf_counter() - t_warm  # compilation and autotuning land here
    barrier()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        train_step(state, images, labels)
    _sync(device)
    seconds = time.perf_counter() - t0
    mfu = flops * args.steps / seconds / peak  # per rank: its FLOP rate over its device's peak
    result = {
        "backbone": args.backbone, "loss": args.loss, "classes": args.classes, "input": [h, w], "batch": args.batch,
        "world": world_size(), "device": device.type, "device_name": _device_name(device),
        "precision": state.precision, "channels_last": args.channels_last, "compile": args.compile,
        "threads": torch.get_num_threads(), "params": sum(p.numel() for p in state.model.backbone.parameters()),
        "images_per_s": args.steps * args.batch / seconds, "peak_memory_gib": _peak_memory_gib(device),
        "memory_kind": "CUDA allocated" if device.type == "cuda" else "RSS", "gflop_per_image": flops / per_rank / 1e9,
        "mfu": mfu, "peak_gflop_s": peak / 1e9, "peak_dtype": str(dtype).removeprefix("torch."),
        "warmup_s": warmup_seconds, "steps": args.steps, "overrides": list(args.overrides),
    }
    if is_main_process():
        print(_line(result))
    return result


def _line(r: dict) -> str:
    """The one printed line of a result."""
    return (f"backbone={r['backbone']} loss={r['loss']} classes={r['classes']} input={r['input'][0]}x{r['input'][1]} "
            f"batch={r['batch']} world={r['world']} device={r['device']} ({r['device_name']}) "
            f"precision={r['precision']} channels_last={r['channels_last']} compile={r['compile']} "
            f"threads={r['threads']} params={r['params']:,}: {r['images_per_s']:,.0f} images/s, "
            f"peak memory {r['peak_memory_gib']:.2f} GiB ({r['memory_kind']}), "
            f"{r['gflop_per_image']:.3f} GFLOP/image, MFU {100 * r['mfu']:.3f}% of a measured "
            f"{r['peak_gflop_s']:,.1f} GFLOP/s {r['peak_dtype']} matmul peak"
            + (" (above 100%: this device emulates the dtype's matmul, so it bounds nothing)" if r["mfu"] > 1 else ""))


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = arguments(argv)
    if args.world_size > 1 and "WORLD_SIZE" not in os.environ:  # start the ranks; each reruns this script
        from torch.distributed.run import main as torchrun

        torchrun(["--standalone", f"--nproc_per_node={args.world_size}", __file__, *argv])
        return
    with distributed_run():
        bench(args)


if __name__ == "__main__":
    main()
