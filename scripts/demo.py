"""`make demo`: synthesize data -> train softmax and L2-softmax -> score both on the LFW protocol -> `facetrain report`.

Every step is a plain `facetrain` command, printed before it runs, so the demo doubles as a tutorial.
`--gpu` (`make demo-gpu`) runs the 1,000-identity experiment of issue 13 instead: the size at which
L2-softmax's gain over softmax is larger than the noise (docs/demo_experiments.md says why the CPU demo is not).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Demo:
    """One demo: the synthetic set, the training settings every run shares, and the runs that differ."""

    synth: tuple[str, ...]  # `facetrain data synth` overrides
    train: tuple[str, ...]  # `facetrain train` overrides of every run
    runs: dict[str, tuple[str, ...]]  # run name -> its own train overrides
    data: str | None = None  # paths.data of every command (None: the default data/, which later commands find)


CPU = Demo(  # ~8 min on 2 idle CPU cores; the two losses differ by less than the noise at this size
    synth=(), train=(),
    runs={"softmax": ("loss=softmax",), "l2softmax": ("loss=l2softmax", "alpha=16")},
)
GPU = Demo(  # issue 13's H100 run: softmax 95.45%, L2-softmax alpha=8 97.85%, alpha=auto (9.1) 97.90%
    synth=("synth.train_identities=1000", "synth.lfw_pairs_per_fold=300", "synth.lfw_identities_per_fold=100",
           "synth.workers=8", "synth.blufr_trials=0", "synth.ytf_splits=0", "synth.ijba_splits=0",
           "synth.ijbc_subjects=0", "synth.insightface=false"),
    train=("backbone=face_resnet27", "embedding_dim=512", "input_size=[112,96]", "batch_size=256",
           "iterations=900", "data.num_workers=8"),
    runs={"softmax": ("loss=softmax", "optim.lr=0.05"),  # at the default lr 0.1 softmax diverges at this size
          "l2softmax_a8": ("loss=l2softmax", "alpha=8"),
          "l2softmax_auto": ("loss=l2softmax", "alpha=auto")},
    data="data/demo_gpu",
)


def commands(demo: Demo, out: Path, iterations: int | None = None) -> list[list[str]]:
    """The demo's `facetrain` argument lists, in order."""
    paths = [f"paths.data={demo.data}"] if demo.data else []
    extra = [f"iterations={iterations}"] if iterations else []
    steps = [["data", "synth", *paths, *demo.synth]]
    for name, overrides in demo.runs.items():
        # the next command scores the LFW protocol anyway: no validation while training (val.every=0)
        steps.append(["train", *demo.train, *overrides, *paths, *extra, "progress=false", "val.every=0",
                      f"hydra.run.dir={out / name}"])
        steps.append(["eval", "lfw", f"model={out / name}", *paths, "progress=false",
                      f"hydra.run.dir={out / name / 'eval_lfw'}"])
    steps.append(["report", *(str(out / name) for name in demo.runs), f"out={out}", "x=alpha"])
    return steps


def facetrain(*args: str) -> None:
    print(f"\n$ facetrain {shlex.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "facetrain.cli", *args], check=True)


def gain_lines(out: Path, runs: list[str]) -> list[str]:
    """Each L2-softmax run's LFW gain over softmax, with the standard error of the difference
    (sqrt(se1^2 + se2^2), each se the std over the 10 folds / sqrt(10)): a gain under two of them is noise."""
    metrics = {name: json.loads((out / name / "metrics.json").read_text()) for name in runs}
    if "softmax" not in metrics or "lfw/acc_mean" not in metrics["softmax"]:
        return []
    base = metrics["softmax"]
    lines = []
    for name, m in metrics.items():
        if name == "softmax" or "lfw/acc_mean" not in m:
            continue
        gain = 100 * (m["lfw/acc_mean"] - base["lfw/acc_mean"])
        se = 100 * math.hypot(m["lfw/acc_stderr"], base["lfw/acc_stderr"])
        verdict = "more than 2 standard errors" if abs(gain) > 2 * se else "within 2 standard errors: noise"
        lines.append(f"{name} - softmax: {gain:+.2f} ± {se:.2f} points LFW accuracy ({verdict})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=None, help="where the demo's runs go (runs/demo, --gpu: runs/demo_gpu)")
    parser.add_argument("--iterations", type=int, default=None, help="override training length")
    parser.add_argument("--gpu", action="store_true", help="the 1,000-identity Face-ResNet-27 experiment (needs a GPU)")
    args = parser.parse_args()
    demo = GPU if args.gpu else CPU
    out, start = Path(args.out or ("runs/demo_gpu" if args.gpu else "runs/demo")), time.perf_counter()
    steps = commands(demo, out, args.iterations)
    for step in steps[:-1]:
        facetrain(*step)
    print("\nDemo: synthetic CASIA-style training, LFW protocol on synthetic LFW-style pairs (10 folds)")
    facetrain(*steps[-1])
    print("", *gain_lines(out, list(demo.runs)), sep="\n")
    print(f"\nDemo finished in {time.perf_counter() - start:.0f} s.")
    print(f"Report:      {out}/report.md, report.csv, lfw_acc_mean_vs_alpha.png")
    print(f"Metrics:     {out}/<run>/metrics.json (and eval_lfw/metrics.json, features_lfw.npz)")
    print(f"TensorBoard: .venv/bin/tensorboard --logdir {out}   (event files under {out}/<run>/tb)")


if __name__ == "__main__":
    main()
