"""`make demo`: synthesize data -> train softmax and L2-softmax -> score both on the LFW protocol -> `facetrain report`.

Every step is a plain `facetrain` command, printed before it runs, so the demo doubles as a tutorial.
The CPU demo is Ranjan et al. 2017's comparison shrunk to 2 cores: Face-ResNet's layout (no BatchNorm) at a quarter
width on 56x48 faces, both losses at the papers' lr 0.1, L2-softmax at eq. 9's alpha (docs/demo_experiments.md).
`--gpu` (`make demo-gpu`) runs the 1,000-identity Face-ResNet-27 experiment instead (measured on an H100).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetrain.eval.features.file import load_features
from facetrain.eval.protocols.lfw import lfw_fold_accuracy, parse_lfw_pairs


@dataclass(frozen=True)
class Demo:
    """One demo: the synthetic set, the training settings every run shares, and the runs that differ."""

    synth: tuple[str, ...]  # `facetrain data synth` overrides
    train: tuple[str, ...]  # `facetrain train` overrides of every run
    runs: dict[str, tuple[str, ...]]  # run name -> its own train overrides
    data: str | None = None  # paths.data of every command (None: the default data/, which later commands find)
    parallel: bool = False  # train the runs side by side, one CPU thread each (on 2 cores: 145 s for two, not 200)


CPU = Demo(  # 206 s on 2 idle CPU cores, synthesis included; docs/demo_experiments.md has its measured gains over several seeds
    synth=("synth.image_size=[56,48]", "synth.blufr_trials=0", "synth.ytf_splits=0", "synth.ijba_splits=0",
           "synth.ijbc_subjects=0", "synth.insightface=false"),  # the 400-identity set at 56x48, LFW-style pairs only
    # one thread per run: decoding 56x48 JPEGs in the training process is cheaper than worker processes
    train=("backbone=face_resnet_mini", "channels_last=true", "data.num_workers=0"),
    runs={"softmax": ("loss=softmax",), "l2softmax": ("loss=l2softmax", "alpha=auto")},
    data="data/demo", parallel=True,
)
GPU = Demo(  # measured on an H100: softmax 95.45%, L2-softmax alpha=8 97.85%, alpha=auto (9.1) 97.90%
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


def commands(demo: Demo, out: Path, iterations: int | None = None, seed: int | None = None) -> list[list[str]]:
    """The demo's `facetrain` argument lists, in order: synth, the training runs, their evaluations, the report."""
    paths = [f"paths.data={demo.data}"] if demo.data else []
    extra = [*([f"iterations={iterations}"] if iterations else []), *([f"seed={seed}"] if seed is not None else [])]
    steps = [["data", "synth", *paths, *demo.synth]]
    for name, overrides in demo.runs.items():
        # the evaluation below scores the LFW protocol anyway: no validation while training (val.every=0)
        steps.append(["train", *demo.train, *overrides, *paths, *extra, "progress=false", "val.every=0",
                      f"hydra.run.dir={out / name}"])
    for name in demo.runs:
        steps.append(["eval", "lfw", f"model={out / name}", *paths, "progress=false",
                      f"hydra.run.dir={out / name / 'eval_lfw'}"])
    steps.append(["report", *(str(out / name) for name in demo.runs), f"out={out}", "x=alpha"])
    return steps


def facetrain(*args: str) -> None:
    print(f"\n$ facetrain {shlex.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "facetrain.cli", *args], check=True)


def facetrain_side_by_side(steps: list[list[str]]) -> None:
    """Run the commands at once, splitting the CPU threads between them (small models scale poorly over threads)."""
    threads = str(max(1, (os.cpu_count() or 1) // len(steps)))
    env = {**os.environ, "OMP_NUM_THREADS": threads}
    procs = []
    for args in steps:
        print(f"\n$ OMP_NUM_THREADS={threads} facetrain {shlex.join(args)} &", flush=True)
        procs.append(subprocess.Popen([sys.executable, "-m", "facetrain.cli", *args], env=env))
    codes = [p.wait() for p in procs]
    failed = [shlex.join(args) for args, code in zip(steps, codes, strict=True) if code]
    if failed:
        raise SystemExit(f"demo: `facetrain {failed[0]}` failed (its output is above)")


def fold_accuracies(eval_dir: Path, pairs_file: Path) -> np.ndarray:
    """The 10 held-out fold accuracies behind one run's `facetrain eval lfw` mean, from its features_lfw.npz."""
    return lfw_fold_accuracy(parse_lfw_pairs(pairs_file), load_features(eval_dir / "features_lfw.npz"))[0].accuracies


def gain_lines(out: Path, runs: list[str], pairs_file: Path) -> list[str]:
    """Each L2-softmax run's LFW gain over softmax with its standard error, from the per-fold differences.

    Both runs are scored on the same pairs, so the comparison is paired: the gain is the mean of the 10 fold
    differences and its standard error their std / sqrt(10). A fold that is hard for one model is hard for the
    other, so this is smaller than combining the two runs' own standard errors. A gain under two of them is noise.
    """
    folds = {name: fold_accuracies(out / name / "eval_lfw", pairs_file) for name in runs
             if (out / name / "eval_lfw" / "features_lfw.npz").is_file()}
    if "softmax" not in folds:
        return []
    lines = []
    for name, accs in folds.items():
        if name == "softmax":
            continue
        diff = 100 * (accs - folds["softmax"])
        gain, se = diff.mean(), diff.std(ddof=1) / np.sqrt(len(diff))
        verdict = "more than 2 standard errors" if abs(gain) > 2 * se else "within 2 standard errors: noise"
        lines.append(f"{name} - softmax: {gain:+.2f} ± {se:.2f} points LFW accuracy, paired over the "
                     f"{len(diff)} folds ({verdict})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=None, help="where the demo's runs go (runs/demo, --gpu: runs/demo_gpu)")
    parser.add_argument("--iterations", type=int, default=None, help="override training length")
    parser.add_argument("--seed", type=int, default=None, help="every run's seed (the noise between seeds: "
                        "docs/demo_experiments.md)")
    parser.add_argument("--gpu", action="store_true", help="the 1,000-identity Face-ResNet-27 experiment (needs a GPU)")
    args = parser.parse_args()
    demo = GPU if args.gpu else CPU
    out, start = Path(args.out or ("runs/demo_gpu" if args.gpu else "runs/demo")), time.perf_counter()
    steps = commands(demo, out, args.iterations, args.seed)
    trains = [step for step in steps if step[0] == "train"]
    facetrain(*steps[0])
    if demo.parallel:
        facetrain_side_by_side(trains)
    else:
        for step in trains:
            facetrain(*step)
    for step in steps[1 + len(trains):-1]:
        facetrain(*step)
    print("\nDemo: synthetic CASIA-style training, LFW protocol on synthetic LFW-style pairs (10 folds)")
    facetrain(*steps[-1])
    pairs_file = Path(demo.data or "data") / "synth" / "lfw" / "pairs.txt"
    print("", *gain_lines(out, list(demo.runs), pairs_file), sep="\n")
    print(f"\nDemo finished in {time.perf_counter() - start:.0f} s.")
    print(f"Report:      {out}/report.md, report.csv, lfw_acc_mean_vs_alpha.png")
    print(f"Metrics:     {out}/<run>/metrics.json (and eval_lfw/metrics.json, features_lfw.npz)")
    print(f"TensorBoard: .venv/bin/tensorboard --logdir {out}   (event files under {out}/<run>/tb)")


if __name__ == "__main__":
    main()
