"""`make demo`: synthesize data -> train softmax and L2-softmax -> score both on the LFW protocol -> `facetrain report`.

Every step is a plain `facetrain` command, printed before it runs, so the demo doubles as a tutorial.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

RUNS = {  # name -> the train overrides that define it
    "softmax": ["loss=softmax"],
    "l2softmax": ["loss=l2softmax", "alpha=16"],
}


def facetrain(*args: str) -> None:
    print(f"\n$ facetrain {shlex.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "facetrain.cli", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="runs/demo", help="where the demo's runs go")
    parser.add_argument("--iterations", type=int, default=None, help="override training length")
    args = parser.parse_args()
    out, start = Path(args.out), time.perf_counter()
    extra = [f"iterations={args.iterations}"] if args.iterations else []
    facetrain("data", "synth")
    for name, overrides in RUNS.items():
        # the next command scores the LFW protocol anyway: no validation while training (val.every=0)
        facetrain("train", *overrides, *extra, "progress=false", "val.every=0", f"hydra.run.dir={out / name}")
        facetrain("eval", "lfw", f"model={out / name}", "progress=false", f"hydra.run.dir={out / name / 'eval_lfw'}")
    print("\nDemo: synthetic CASIA-style training, LFW protocol on synthetic LFW-style pairs (10 folds)")
    facetrain("report", *(str(out / name) for name in RUNS), f"out={out}", "x=alpha")
    print(f"\nDemo finished in {time.perf_counter() - start:.0f} s.")
    print(f"Report:      {out}/report.md, report.csv, lfw_acc_mean_vs_alpha.png")
    print(f"Metrics:     {out}/<run>/metrics.json (and eval_lfw/metrics.json, features_lfw.npz)")
    print(f"TensorBoard: .venv/bin/tensorboard --logdir {out}   (event files under {out}/<run>/tb)")


if __name__ == "__main__":
    main()
