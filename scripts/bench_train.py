"""Training throughput (images/s): facetrain's own `train_step` on random uint8 batches, per backbone config.

Usage: python scripts/bench_train.py [--backbone small_cnn] [--loss softmax] [--batch-size 64] [--classes 400]
                                     [--steps 20] [--device auto] [--amp]
It times exactly the step training runs (forward, loss, backward, scaler, optimizer, LR schedule), without
the data loader. Speed targets are checked here, never by timed assertions in tests.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from hydra import compose, initialize_config_module

from facetrain.run import pick_device
from facetrain.train import build_state, train_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="small_cnn")
    parser.add_argument("--loss", default="softmax")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--classes", type=int, default=400)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    args = parser.parse_args()
    overrides = [f"backbone={args.backbone}", f"loss={args.loss}", "run_dir=.", f"amp={args.amp}"]
    with initialize_config_module(config_module="facetrain.configs", version_base="1.3"):
        cfg = compose("train", overrides)
    device = pick_device(args.device)
    state = build_state(cfg, args.classes, device, tempfile.mkdtemp())
    h, w = state.model.input_size
    channels = getattr(state.model.backbone, "in_channels", 3)
    images = torch.randint(0, 256, (args.batch_size, channels, h, w), dtype=torch.uint8, device=device)
    labels = torch.randint(0, args.classes, (args.batch_size,), device=device)
    state.model.train()
    for _ in range(3):
        train_step(state, images, labels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        train_step(state, images, labels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = args.steps * args.batch_size / (time.perf_counter() - t0)
    params = sum(p.numel() for p in state.model.backbone.parameters())
    print(f"backbone={args.backbone} loss={args.loss} input={h}x{w} batch={args.batch_size} device={device} "
          f"amp={state.amp} threads={torch.get_num_threads()} params={params:,}: {rate:.0f} images/s")


if __name__ == "__main__":
    main()
