"""`facetrain report`: one table of every run (printed, report.md, report.csv) and the report's plots (also in the
sweep's or run's MLflow run, when it has one)."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from facetrain.config import abs_path, check_count
from facetrain.errors import FacetrainError
from facetrain.eval.tables import format_table, markdown_table
from facetrain.report.benchmarks import BenchmarkTable, benchmark_tables
from facetrain.report.compose import as_list
from facetrain.report.evaluate import evaluate_runs
from facetrain.report.figure import Plot
from facetrain.report.runs import RunRecord, load_runs
from facetrain.report.table import common_overrides, csv_text, headline_table, varying_keys
from facetrain.tracking.results import log_results

__all__ = ["Report", "build_report"]


@dataclass
class Report:
    """What a report found and wrote (tests and scripts read it instead of parsing files)."""

    runs: list[RunRecord]
    table: str
    markdown: Path
    csv: Path
    plots: list[Plot]


def build_report(cfg: DictConfig) -> Report:
    """Read the runs of `cfg.dirs` (scoring them first with `eval=`), print the table, write it and the plots."""
    dirs = [abs_path(d) for d in cfg.dirs or []]
    if not dirs:
        raise FacetrainError("no runs given; use: facetrain report runs/multirun/DATE (a sweep) or RUN_DIR ...")
    baselines = [replace(r, name=f"baseline {r.name}", baseline=True)
                 for r in load_runs([abs_path(d) for d in as_list(cfg.baseline)])]
    runs = load_runs(dirs) + baselines
    _check_settings(cfg, runs)
    if cfg.eval:
        runs = evaluate_runs(runs, str(cfg.eval), [str(o) for o in cfg.eval_overrides])
    out_dir = abs_path(cfg.out) if cfg.out else _default_out(dirs)
    out_dir.mkdir(parents=True, exist_ok=True)
    headers, rows = headline_table(runs)
    table = format_table(headers, rows)
    summary = _summary(runs, dirs)
    benchmarks = benchmark_tables(runs)
    table += "".join(f"\n\n{b.title}\n{format_table(b.headers, b.rows)}" for b in benchmarks)
    print(f"\n{summary}\n\n{table}\n")
    md = out_dir / "report.md"
    plots = [p for spec in (cfg.plots or {}).values() if spec is not None
             for p in instantiate(spec)(runs=runs, cfg=cfg, out_dir=out_dir)]
    md.write_text(_markdown(summary, headers, rows, plots, out_dir, benchmarks))
    csv_file = out_dir / "report.csv"
    csv_file.write_text(csv_text(runs))
    print(f"report: {md}, {csv_file}" + "".join(f", {p.path}" for p in plots))
    for directory in dirs:  # a sweep's parent MLflow run, or a run's own, gets the report (when it has one)
        log_results(directory, files=[md, csv_file, *(p.path for p in plots)], artifact_path="report",
                    what="the report")
    return Report(runs, table, md, csv_file, plots)


def _check_settings(cfg: DictConfig, runs: list[RunRecord]) -> None:
    """Before any run is scored: keys whose mistakes would otherwise surface after the work (a traceback, a plot
    against a key no run has)."""
    x = cfg.get("x")
    if x and not any(str(x) in r.overrides or r.number(f"train/{x}") is not None for r in runs):
        raise FacetrainError(f"x={x}: no run sets it (or logs train/{x}); choose an override key, e.g. one the "
                             f"runs vary: {', '.join(varying_keys(runs)) or 'none varies'}")
    check_count("analysis_samples", cfg.get("analysis_samples", 500), 1, "images each checkpoint analysis embeds")
    if cfg.out and abs_path(cfg.out).exists() and not abs_path(cfg.out).is_dir():
        raise FacetrainError(f"out={abs_path(cfg.out)} is a file; give a folder for report.md, report.csv and the "
                             "plots")


def _default_out(dirs: list[Path]) -> Path:
    """The sweep (or run) directory given; for several, the folder that holds them all."""
    return dirs[0] if len(dirs) == 1 else Path(os.path.commonpath([str(d) for d in dirs]))


def _summary(runs: list[RunRecord], dirs: list[Path]) -> str:
    counts = Counter(run.status for run in runs)
    where = str(dirs[0]) if len(dirs) == 1 else f"{len(dirs)} folders"
    text = f"{len(runs)} runs from {where}: " + ", ".join(f"{n} {s}" for s, n in counts.items())
    common = common_overrides(runs)
    return text + (f"\ncommon overrides: {' '.join(common)}" if common and len(runs) > 1 else "")


def _markdown(summary: str, headers: list[str], rows: list[list[str]], plots: list[Plot], out_dir: Path,
              benchmarks: list[BenchmarkTable] = ()) -> str:
    lines = ["# facetrain report", "", *summary.splitlines(), "", markdown_table(headers, rows), ""]
    for b in benchmarks:
        lines += [f"## {b.title}", "", markdown_table(b.headers, b.rows), ""]
    for plot in plots:
        lines += [f"![{plot.title}]({os.path.relpath(plot.path, out_dir)})", ""]
        lines += [f"- {note}" for note in plot.notes] + ([""] if plot.notes else [])
    return "\n".join(lines)
