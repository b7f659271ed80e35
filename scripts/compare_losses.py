"""Train every loss at demo size and score each on the synthetic LFW protocol; print one table.

Each step is a plain `facetrain` command (printed before it runs): `facetrain train loss=NAME` with the
demo's defaults, then `facetrain eval lfw model=RUN`. A loss that fails is reported in the table and
does not stop the others.

    .venv/bin/python scripts/compare_losses.py                      # every loss, 800 iterations each
    .venv/bin/python scripts/compare_losses.py --iterations 300 --losses softmax,normface,arcface
    .venv/bin/python scripts/compare_losses.py --iterations 150 --set input_size=[56,48]   # a quick look
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from facetrain.eval.tables import format_table, pct

LOSSES = ["softmax", "l2softmax", "normface", "ring", "center", "l2softmax_center", "range", "contrastive",
          "triplet", "c_contrastive", "c_triplet", "c_triplet_center", "softmax_c_contrastive", "sphereface",
          "cosface", "arcface"]


def facetrain(*args: str) -> bool:
    print(f"\n$ facetrain {shlex.join(args)}", flush=True)
    return subprocess.run([sys.executable, "-m", "facetrain.cli", *args]).returncode == 0


def _row(name: str, run: Path, seconds: float, ok: bool) -> list[str]:
    path = run / "metrics.json"
    m = json.loads(path.read_text()) if path.exists() else {}
    if not ok or "lfw/acc_mean" not in m:
        return [name, "failed", "", "", f"{seconds:.0f}"]
    acc = pct(m["train/acc"]) if m.get("train/acc") is not None else "-"
    return [name, acc, pct(m["lfw/acc_mean"], m["lfw/acc_std"]), pct(m["lfw/auc"]), f"{seconds:.0f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/compare_losses", help="where the runs go")
    parser.add_argument("--iterations", type=int, default=None, help="training length (default: the demo's 800)")
    parser.add_argument("--losses", default=",".join(LOSSES), help="comma-separated loss config names")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra train overrides for every loss, e.g. input_size=[56,48]")
    parser.add_argument("--no-synth", action="store_true", help="skip `facetrain data synth` (data already there)")
    args = parser.parse_args()
    out, losses = Path(args.out), [s for s in args.losses.split(",") if s]
    extra = ([f"iterations={args.iterations}"] if args.iterations else []) + list(args.set)
    if not args.no_synth:
        facetrain("data", "synth")
    rows = []
    for name in losses:
        run, t0 = out / name, time.perf_counter()
        ok = facetrain("train", f"loss={name}", *extra, "progress=false", f"hydra.run.dir={run}")
        ok = ok and facetrain("eval", "lfw", f"model={run}", "progress=false", f"hydra.run.dir={run / 'eval_lfw'}")
        rows.append(_row(name, run, time.perf_counter() - t0, ok))
    setting = " ".join(extra) or "the demo's defaults"
    print(f"\nLosses ({setting}), LFW protocol on the synthetic LFW pairs (10 folds)\n")
    print(format_table(["loss", "train acc %", "LFW acc % (mean ± std)", "LFW AUC %", "train+eval s"], rows))


if __name__ == "__main__":
    main()
