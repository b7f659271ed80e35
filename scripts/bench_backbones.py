"""Backbone table: parameters, GFLOPs (torch.utils.flop_counter) and CPU inference images/s per config option.

    .venv/bin/python scripts/bench_backbones.py                      # every backbone, Markdown table
    .venv/bin/python scripts/bench_backbones.py --only face_resnet27 --iters 5 --batch 16

FLOPs are counted by FlopCounterMode on one image (2 FLOPs per multiply-add, as it counts them);
images/s is eval mode under torch.no_grad, after one warm-up batch, median of --iters batches.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from torch.utils.flop_counter import FlopCounterMode

# (config option, input size, extra overrides): each backbone at the sizes its papers use.
CASES = [
    ("face_resnet27", (112, 96), []),
    ("face_resnet27", (128, 128), []),
    ("sphereface20", (112, 96), []),
    ("lenet_pp", (28, 28), []),
    ("resnet101", (112, 112), []),
    ("resnet101", (128, 128), []),
    ("resnext101", (112, 112), []),
    ("iresnet50", (112, 112), []),
    ("iresnet100", (112, 112), []),
    ("mobilefacenet", (112, 112), ["embedding_dim=128"]),  # the paper's 128-d feature
    ("timm", (112, 112), ["backbone.name=resnet18"]),
    ("timm", (112, 112), ["backbone.name=mobilenetv3_small_100"]),
    ("timm", (112, 112), ["backbone.name=vit_tiny_patch16_224"]),
]


def build(option: str, size: tuple[int, int], extra: list[str]) -> torch.nn.Module:
    dim = [] if any(o.startswith("embedding_dim=") for o in extra) else ["embedding_dim=512"]
    overrides = [f"backbone={option}", f"input_size=[{size[0]},{size[1]}]", *dim, *extra]
    with initialize_config_module(config_module="facetrain.configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    return instantiate(cfg.backbone).eval()


def images(model: torch.nn.Module, batch: int) -> torch.Tensor:
    return torch.randint(0, 256, (batch, getattr(model, "in_channels", 3), *model.input_size), dtype=torch.uint8)


def gflops(model: torch.nn.Module) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(images(model, 1))
    return counter.get_total_flops() / 1e9


def images_per_s(model: torch.nn.Module, batch: int, iters: int) -> float:
    x = images(model, batch)
    times = []
    with torch.no_grad():
        model(x)  # warm-up: allocator, oneDNN kernel selection
        for _ in range(iters):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="config options to run (default: all)")
    parser.add_argument("--batch", type=int, default=8, help="images per timed batch")
    parser.add_argument("--iters", type=int, default=3, help="timed batches (the median is reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} CPU threads, batch {args.batch}, median of {args.iters}\n")
    print("| backbone | input (C x H x W) | parameters | GFLOPs | CPU images/s |")
    print("| --- | --- | ---: | ---: | ---: |")
    for option, size, extra in CASES:
        if args.only and option not in args.only:
            continue
        model = build(option, size, extra)
        params = sum(p.numel() for p in model.parameters())
        shape = f"{getattr(model, 'in_channels', 3)} x {size[0]} x {size[1]}"
        name = f"{option} {extra[0].split('=')[1]}" if option == "timm" else option
        print(f"| {name} | {shape} | {params:,} | {gflops(model):.2f} | "
              f"{images_per_s(model, args.batch, args.iters):.1f} |", flush=True)


if __name__ == "__main__":
    main()
