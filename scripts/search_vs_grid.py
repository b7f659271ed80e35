"""The best alpha an N-trial Optuna (TPE) search finds against an N-point grid, on the synthetic twin of
L2-softmax's alpha sweep (experiment=l2softmax_alpha_synth); each run scored by its validation (val/best/lfw/acc_mean).

Both are plain `facetrain train -m` commands (printed before they run): the grid a log-spaced `alpha=a,b,...`
over the search space's range, the search `search=l2softmax_alpha hydra.sweeper.n_trials=N`. Prints every
run's alpha and score, then the best of each.

    .venv/bin/python scripts/search_vs_grid.py                          # N=6, 150 iterations, a small synthetic set
    .venv/bin/python scripts/search_vs_grid.py --n 10 --iterations 300 --no-synth
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

from facetrain.eval.tables import format_table, pct

LOW, HIGH = 1.0, 64.0  # configs/search/l2softmax_alpha.yaml's interval
METRIC = "val/best/lfw/acc_mean"
SMALL_SYNTH = ["synth.train_identities=60", "synth.lfw_pairs_per_fold=30", "synth.lfw_identities_per_fold=20",
               "synth.blufr_trials=0", "synth.ytf_splits=0", "synth.ijba_splits=0", "synth.ijbc_subjects=0",
               "synth.insightface=false"]


def facetrain(*args: str) -> float:
    """Run one command; its wall seconds."""
    print(f"\n$ facetrain {shlex.join(args)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "facetrain.cli", *args])
    return time.perf_counter() - t0


def grid_points(n: int) -> list[float]:
    """n log-spaced alphas from LOW to HIGH, both ends included, at 3 significant digits."""
    return [float(f"{LOW * (HIGH / LOW) ** (i / (n - 1)):.3g}") for i in range(n)]


def scores(sweep_dir: Path) -> list[tuple[float, float | None]]:
    """(alpha, METRIC or None when the job failed) of each job, by job number."""
    jobs = sorted((d for d in sweep_dir.iterdir() if (d / ".hydra").is_dir()), key=lambda d: int(d.name.split("_")[0]))
    out = []
    for job in jobs:
        overrides = dict(o.split("=", 1) for o in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()))
        metrics = json.loads((job / "metrics.json").read_text()) if (job / "metrics.json").exists() else {}
        out.append((float(overrides["alpha"]), metrics.get(METRIC)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=6, help="runs of each: grid points and search trials")
    parser.add_argument("--iterations", type=int, default=150, help="training length of every run")
    parser.add_argument("--seed", type=int, default=0, help="training seed of every run, and the sampler's")
    parser.add_argument("--out", default="runs/search_vs_grid", help="where both sweeps go")
    parser.add_argument("--no-synth", action="store_true", help="use the data already in paths.data")
    args = parser.parse_args()
    out = Path(args.out)
    common = ["experiment=l2softmax_alpha_synth", f"iterations={args.iterations}", f"seed={args.seed}", "progress=false",
              "hydra.callbacks.report.enabled=false"]
    if not args.no_synth:
        facetrain("data", "synth", *SMALL_SYNTH)
    grid_alphas = ",".join(map(str, grid_points(args.n)))
    seconds = {"grid": facetrain("train", "-m", *common, f"alpha={grid_alphas}", f"hydra.sweep.dir={out / 'grid'}"),
               "search": facetrain("train", "-m", "search=l2softmax_alpha", *common, f"hydra.sweeper.n_trials={args.n}",
                                   f"hydra.sweeper.sampler.seed={args.seed}", f"hydra.sweeper.sampler.n_startup_trials={max(1, args.n // 2)}",
                                   f"hydra.sweep.dir={out / 'search'}")}
    rows, best = [], {}
    for method in ("grid", "search"):
        runs = scores(out / method)
        rows += [[method, str(i), f"{alpha:.3g}", "failed" if v is None else pct(v)] for i, (alpha, v) in enumerate(runs)]
        done = [(v, alpha) for alpha, v in runs if v is not None and math.isfinite(v)]
        best[method] = max(done) if done else (math.nan, math.nan)
    print("\n" + format_table(["method", "run", "alpha", "LFW-protocol acc % (synthetic)"], rows))
    print("\n" + format_table(["method", "runs", "best alpha", "best acc %", "wall s"],
                              [[m, str(args.n), f"{best[m][1]:.3g}", pct(best[m][0]), f"{seconds[m]:.0f}"]
                               for m in ("grid", "search")]))


if __name__ == "__main__":
    main()
