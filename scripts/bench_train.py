"""Training throughput (images/s): the model step alone on random uint8 batches, per backbone config.

Usage: python scripts/bench_train.py [--backbone small_cnn] [--batch-size 64] [--steps 20] [--device auto]
Speed targets are checked here, never by timed assertions in tests.
"""

from __future__ import annotations

import argparse
import time

import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from facetrain.train.build import build_parts
from facetrain.train.device import pick_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbone", default="small_cnn")
    parser.add_argument("--loss", default="softmax")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--classes", type=int, default=400)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    with initialize_config_module(config_module="facetrain.configs", version_base="1.3"):
        cfg = compose("train", [f"backbone={args.backbone}", f"loss={args.loss}", "run_dir=."])
    device = pick_device(args.device)
    parts = build_parts(cfg, args.classes).to(device)
    optimizer = instantiate(cfg.optim)(parts.parameters())
    h, w = cfg.input_size
    images = torch.randint(0, 256, (args.batch_size, 3, h, w), dtype=torch.uint8, device=device)
    labels = torch.randint(0, args.classes, (args.batch_size,), device=device)

    def step():
        out = parts["loss"](parts["head"](parts["backbone"](images)), labels)
        optimizer.zero_grad(set_to_none=True)
        out.total.backward()
        optimizer.step()

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = args.steps * args.batch_size / (time.perf_counter() - t0)
    params = sum(p.numel() for p in parts["backbone"].parameters())
    print(f"backbone={args.backbone} loss={args.loss} input={h}x{w} batch={args.batch_size} device={device} "
          f"threads={torch.get_num_threads()} params={params:,}: {rate:.0f} images/s")


if __name__ == "__main__":
    main()
